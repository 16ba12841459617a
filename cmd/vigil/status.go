package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/propagation"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vigil/node"
	"vigil/node/api"
)

// socketEnv overrides the default admin socket for the client commands.
const socketEnv = "VIGIL_SOCKET"

func defaultSocket() string {
	if p := os.Getenv(socketEnv); p != "" {
		return p
	}
	return api.DefaultSocket
}

func newStatusCmd() *cobra.Command {
	var socket, output string
	var timeout time.Duration
	var fleet bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running daemon's VRRP instances",
		Long: `Ask the running vigil daemon, over its admin socket, for the state of this node:
per VRRP instance its state, base and effective priority, the master it hears
(with its priority), the advert interval, the virtual addresses, the last
transition and its reason, and the fault cause.

-o json prints the daemon's /v1/status document as it is (stable snake_case keys).

--fleet shows the fleet instead (a node with a gossip: section): per virtual
router its master(s) and every member's state and priority; per virtual server
each real server's fleet verdict, how many directors see it up, this node's own
verdict and the directors that disagree; desired IPVS tables that diverge.
With -o json it prints /v1/fleet.

The socket is --socket, else $VIGIL_SOCKET, else ` + api.DefaultSocket + `.
Exit status: 0 ok, 1 daemon unreachable or error, 2 usage error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput("vigil status", output); err != nil {
				return err
			}
			path := "/v1/status"
			if fleet {
				path = "/v1/fleet"
			}
			body, err := adminGet(cmd.Context(), socket, path, timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil status: " + err.Error()}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				_, err := out.Write(body)
				return err
			}
			if fleet {
				var st node.FleetStatus
				if err := json.Unmarshal(body, &st); err != nil {
					return &exitError{code: 1, msg: fmt.Sprintf("vigil status: unreadable answer from the daemon: %v", err)}
				}
				return printFleet(out, &st)
			}
			var st node.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("vigil status: unreadable answer from the daemon: %v", err)}
			}
			return printStatus(out, &st, time.Now())
		},
	}
	clientFlags(cmd, &socket, &output, &timeout)
	cmd.Flags().BoolVar(&fleet, "fleet", false, "show the whole fleet (virtual routers, real-server verdicts) as this node sees it")
	return cmd
}

// flagUsageError makes a bad flag exit 2 (usage), not 1.
func flagUsageError(c *cobra.Command, err error) error {
	return &exitError{code: 2, msg: fmt.Sprintf("%s: %v\nRun '%s --help' for usage.", c.CommandPath(), err, c.CommandPath())}
}

// usageArgs makes an argument error exit 2.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return flagUsageError(c, err)
		}
		return nil
	}
}

// adminGet fetches path from the daemon's admin API on the unix socket and
// returns the body of a 200 answer. Errors say what an operator can do.
//
// One request per connection, written and read with net/http's wire
// helpers: http.Transport (and its HTTP/2 client) would add half a
// megabyte to the binary for nothing a local socket needs.
func adminGet(ctx context.Context, socket, path string, timeout time.Duration) ([]byte, error) {
	return adminRequest(ctx, socket, "GET", path, timeout)
}

// adminRequest is adminGet with any method.
func adminRequest(ctx context.Context, socket, method, path string, timeout time.Duration) ([]byte, error) {
	return adminSend(ctx, socket, method, path, nil, timeout)
}

// adminSend is adminRequest with a JSON request body (nil: none).
func adminSend(ctx context.Context, socket, method, path string, body []byte, timeout time.Duration) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, dialError(socket, err, timeout)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vigil"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	// The caller's span, if any, continues on the daemon (W3C traceparent).
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, readError(ctx, socket, err, timeout)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, readError(ctx, socket, err, timeout)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, readError(ctx, socket, err, timeout)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(answer, &e) == nil && e.Message != "" {
			if len(e.Details) > 0 {
				return nil, fmt.Errorf("%s:\n%s", e.Message, strings.Join(e.Details, "\n"))
			}
			return nil, fmt.Errorf("the daemon answered %d: %s (%s)", resp.StatusCode, e.Error(), e.Code)
		}
		return nil, fmt.Errorf("the daemon answered %s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	return answer, nil
}

func readError(ctx context.Context, socket string, err error, timeout time.Duration) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("vigil did not answer on %s within %s", socket, timeout)
	}
	return fmt.Errorf("talking to vigil on %s: %w", socket, err)
}

func dialError(socket string, err error, timeout time.Duration) error {
	fi, serr := os.Stat(socket)
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(serr, os.ErrNotExist):
		return fmt.Errorf("vigil is not running (no socket at %s)", socket)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		who := ""
		if serr == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				who = fmt.Sprintf(" (owner uid %d, group gid %d, mode %v)", st.Uid, st.Gid, fi.Mode().Perm())
			}
		}
		return fmt.Errorf("permission denied on %s%s: run as root, or as a member of the group the daemon gives it (vigil run --admin-group)", socket, who)
	case serr == nil && fi.Mode().Type() != os.ModeSocket:
		return fmt.Errorf("%s is not a socket", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("vigil is not running (nothing listens on %s: a stale socket from an earlier run)", socket)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("vigil did not answer on %s within %s", socket, timeout)
	}
	return fmt.Errorf("cannot reach vigil on %s: %w", socket, err)
}

// printStatus writes the node header and one row per instance, aligned by
// tabwriter. Extra VIPs go on continuation rows under the first.
func printStatus(w io.Writer, st *node.Status, now time.Time) error {
	rev := ""
	if st.Revision != "" {
		rev = " (revision " + shortHash(st.Revision) + ")"
	}
	fmt.Fprintf(w, "Node:     %s\nVersion:  %s%s\nConfig:   %s (sha256 %s)\n", st.Node, st.Version, rev, st.ConfigPath, shortHash(st.ConfigHash))
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(w, "Started:  %s (%s ago)\n", st.StartedAt.Local().Format(time.RFC3339), ago(now.Sub(st.StartedAt)))
	}
	fmt.Fprintln(w)
	if len(st.Instances) == 0 {
		if _, err := fmt.Fprintln(w, "No VRRP instances configured."); err != nil {
			return err
		}
		return printVirtualServers(w, st)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINTERFACE\tVRID\tFAMILY\tSTATE\tPRIORITY\tMASTER\tINTERVAL\tLAST TRANSITION\tREASON\tFAULT\tVIPS")
	for _, in := range st.Instances {
		vips := in.VIPs
		first := "-"
		if len(vips) > 0 {
			first, vips = vipCell(in, vips[0]), vips[1:]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			in.Name, in.Interface, in.VRID, dash(in.Family), strings.ToUpper(dash(in.State)),
			fmt.Sprintf("%d/%d", in.BasePriority, in.EffectivePriority), masterCell(in),
			intervalCell(in), transitionCell(in, now), dash(in.LastReason), dash(in.Fault), first)
		for _, v := range vips {
			fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\t\t\t%s\n", vipCell(in, v))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printTrackers(w, st); err != nil {
		return err
	}
	return printVirtualServers(w, st)
}

// printVirtualServers lists the virtual servers and their real servers'
// health, one row per check (a real server without checks gets one row).
func printVirtualServers(w io.Writer, st *node.Status) error {
	if len(st.VirtualServers) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VIRTUAL SERVER\tSERVICE\tQUORUM\tREAL SERVER\tSTATE\tWEIGHT\tCHECK\tDETAIL")
	for _, vs := range st.VirtualServers {
		q := fmt.Sprintf("%d/%d ", vs.LiveWeight, vs.Quorum)
		if vs.QuorumUp {
			q += "up"
		} else {
			q += "LOST"
			if vs.Sorry != "" {
				q += " (sorry " + vs.Sorry + ")"
			}
		}
		first := true
		row := func(rs, state, weight, chk, detail string) {
			name, svc, quo := "", "", ""
			if first {
				name, svc, quo, first = vs.Name, vs.Service+" "+vs.Scheduler, q, false
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, svc, quo, rs, state, weight, chk, detail)
		}
		if len(vs.Reals) == 0 {
			row("-", "-", "-", "-", "-")
		}
		for _, rs := range vs.Reals {
			state := "up"
			if !rs.Up {
				state = "DOWN"
			}
			addr := rs.Address + " " + rs.Forward
			if len(rs.Checks) == 0 {
				row(addr, state, strconv.Itoa(rs.Weight), "-", "no checks")
				continue
			}
			for i, c := range rs.Checks {
				cs := c.Type + " up"
				if !c.Up {
					cs = c.Type + " down"
				}
				switch {
				case c.Suspended:
					cs += " (suspended: ha_suspend)"
				case c.Init:
					cs += " (not checked yet)"
				}
				if i == 0 {
					row(addr, state, strconv.Itoa(rs.Weight), cs, dash(c.Detail))
				} else {
					row("", "", "", cs, dash(c.Detail))
				}
			}
		}
	}
	return tw.Flush()
}

// printTrackers lists every instance's trackers, if any.
func printTrackers(w io.Writer, st *node.Status) error {
	var any bool
	for _, in := range st.Instances {
		any = any || len(in.Trackers) > 0
	}
	if !any {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tTRACKER\tSTATE\tWEIGHT\tDETAIL")
	for _, in := range st.Instances {
		for _, t := range in.Trackers {
			state := "up"
			switch {
			case t.Kind == "file":
				state = fmt.Sprintf("value %d", t.Value)
			case !t.Up:
				state = "down"
			}
			weight := strconv.Itoa(t.Weight)
			if t.Reverse {
				weight += " reverse"
			}
			fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\n", in.Name, t.Kind, t.Name, state, weight, dash(t.Detail))
		}
	}
	return tw.Flush()
}

// vipCell shows a VIP's address, with its device only when it is not the
// instance interface, and its label if any.
func vipCell(in node.InstanceStatus, v node.VIPStatus) string {
	s := v.Address
	if v.Dev != "" && v.Dev != in.Interface {
		s += " dev " + v.Dev
	}
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// masterCell: the master heard and its priority; "self" when it is us.
func masterCell(in node.InstanceStatus) string {
	if in.Master == "" {
		return "-"
	}
	if in.State == "master" || in.Master == in.Source {
		return fmt.Sprintf("%s (%d, self)", in.Master, in.MasterPriority)
	}
	return fmt.Sprintf("%s (%d)", in.Master, in.MasterPriority)
}

// intervalCell: our advert interval, and the master's when it differs (v3
// backups use the master's).
func intervalCell(in node.InstanceStatus) string {
	s := seconds(in.AdvertInterval).String()
	if in.State != "master" && in.MasterAdvertInterval > 0 && in.MasterAdvertInterval != in.AdvertInterval {
		s += " (master " + seconds(in.MasterAdvertInterval).String() + ")"
	}
	return s
}

func seconds(f float64) time.Duration {
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond)
}

func transitionCell(in node.InstanceStatus, now time.Time) string {
	if in.LastTransition.IsZero() {
		return "-"
	}
	return ago(now.Sub(in.LastTransition)) + " ago"
}

// ago renders an age with precision that fits it: 350ms, 1.5s, 42s, 3m12s,
// 5h7m, 3d4h.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}
