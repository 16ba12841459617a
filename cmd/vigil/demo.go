package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"vigil/internal/nslab"
	"vigil/vrrp"
)

//go:embed demo.yaml
var demoConfig string

const demoPrefix = "vdemo"

type demoNode struct {
	Name     string
	Priority int
	Interval time.Duration
	addr     netip.Prefix
	node     *nslab.Node
	proc     *nslab.Process
}

func newDemoCmd() *cobra.Command {
	var interval time.Duration
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a 3-node VRRP cluster in network namespaces and show failover (root)",
		Long: `Build three network namespaces on one bridge, run "vigil run" in each on an
embedded configuration (VRID 51, VIP 192.0.2.100/24, priorities 150/100/50),
then show the election, a link cut on the master with the takeover time
measured on the wire, preemption when the link returns, and a graceful
stop handing over with a priority-0 advert. Everything is removed at the end.
Needs root, iproute2 and tcpdump ("make demo" installs them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.OutOrStdout(), interval, keep)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 100*time.Millisecond, "VRRP advert interval (multiple of 10ms)")
	cmd.Flags().BoolVar(&keep, "keep-logs", false, "keep the lab directory with the nodes' configs and logs")
	return cmd
}

func runDemo(out io.Writer, interval time.Duration, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return &exitError{code: 1, msg: "vigil demo: needs root (network namespaces); try: sudo make demo"}
	}
	if _, err := vrrp.IntervalField(3, interval); err != nil {
		return &exitError{code: 2, msg: "vigil demo: --interval: " + err.Error()}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the vigil binary: %w", err)
	}
	// Tagged as the test labs are, so a demo in one checkout leaves another's alone.
	prefix, err := nslab.Tagged(demoPrefix)
	if err != nil {
		return err
	}
	if err := nslab.Cleanup(prefix); err != nil {
		return fmt.Errorf("removing an earlier demo's namespaces: %w", err)
	}
	lab, err := nslab.New(prefix)
	if err != nil {
		return err
	}
	defer func() {
		lab.KeepFiles = keep
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if keep {
			fmt.Fprintf(out, "\nLab files (configs, logs, capture) kept in %s\n", lab.Dir())
		}
		fmt.Fprintln(out, "Cleaned up: namespaces removed.")
	}()

	vip := netip.MustParsePrefix("192.0.2.100/24")
	nodes := []*demoNode{{Name: "n1", Priority: 150}, {Name: "n2", Priority: 100}, {Name: "n3", Priority: 50}}
	fmt.Fprintf(out, "vigil demo: 3 nodes in network namespaces on one bridge, VRRPv3, VRID 51, VIP %s, adverts every %s\n", vip, interval)
	for i, d := range nodes {
		d.Interval = interval
		d.addr = netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 11+i))
		if d.node, err = lab.AddNode(d.Name, d.addr); err != nil {
			return err
		}
		path := filepath.Join(lab.Dir(), d.Name+".yaml")
		if err := os.WriteFile(path, []byte(renderDemoConfig(d)), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s  %-15s priority %d   (namespace %s, config %s)\n", d.Name, d.addr.Addr(), d.Priority, d.node.NS, path)
	}
	capture, err := lab.StartCapture(nslab.FilterVRRP)
	if err != nil {
		return fmt.Errorf("starting the bridge capture (is tcpdump installed?): %w", err)
	}

	fmt.Fprintln(out, "\n[1] Election: starting vigil on every node")
	start := time.Now()
	for _, d := range nodes {
		if d.proc, err = d.node.Start(self, "run", "--config", filepath.Join(lab.Dir(), d.Name+".yaml"), "--admin-socket", filepath.Join(lab.Dir(), d.Name+"-admin.sock")); err != nil {
			return err
		}
	}
	holder, err := demoWaitHolder(nodes, vip.Addr(), "n1", 3*time.Second+10*interval)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    %s is master and holds %s (%.0f ms after start; Master_Down_Interval at priority 150 is %s)\n",
		holder, vip.Addr(), ms(time.Since(start)), vrrp.MasterDownInterval(3, 150, interval))
	demoStates(out, nodes)

	fmt.Fprintln(out, "\n[2] Node loss: cutting n1's link (its bridge port goes down)")
	time.Sleep(3 * interval)
	cut := time.Now()
	if err := nodes[0].node.LinkDown(); err != nil {
		return err
	}
	if err := demoWaitAddr(nodes[1], vip.Addr(), true, 3*time.Second+10*interval); err != nil {
		return err
	}
	last, first, err := demoTakeover(capture, nodes[0].addr.Addr(), nodes[1].addr.Addr(), cut, false)
	if err != nil {
		return err
	}
	mdi := vrrp.MasterDownInterval(3, 100, interval)
	fmt.Fprintf(out, "    n2 took over: last n1 advert → first n2 advert on the wire = %.1f ms (Master_Down_Interval %.1f ms, excess %.2f ms)\n",
		ms(first.Sub(last)), ms(mdi), ms(first.Sub(last)-mdi))

	fmt.Fprintln(out, "\n[3] Preemption: restoring n1's link (priority 150 > 100)")
	restore := time.Now()
	if err := nodes[0].node.LinkUp(); err != nil {
		return err
	}
	if _, err := demoWaitHolder(nodes, vip.Addr(), "n1", 3*time.Second+10*interval); err != nil {
		return err
	}
	fmt.Fprintf(out, "    n1 is master again after %.0f ms; n2 released the VIP\n", ms(time.Since(restore)))
	demoStates(out, nodes)

	fmt.Fprintln(out, "\n[4] Graceful stop: SIGTERM to n1 (it sends a priority-0 advert and removes its VIP)")
	time.Sleep(3 * interval)
	stop := time.Now()
	if err := nodes[0].proc.Stop(5 * time.Second); err != nil {
		return fmt.Errorf("stopping vigil on n1: %w", err)
	}
	if _, err := demoWaitHolder(nodes, vip.Addr(), "n2", 3*time.Second); err != nil {
		return err
	}
	zero, first, err := demoTakeover(capture, nodes[0].addr.Addr(), nodes[1].addr.Addr(), stop, true)
	if err != nil {
		return err
	}
	skew := vrrp.SkewTime(3, 100, interval)
	fmt.Fprintf(out, "    n2 took over: priority-0 advert → first n2 advert = %.1f ms (Skew_Time %.1f ms instead of the full %.1f ms)\n",
		ms(first.Sub(zero)), ms(skew), ms(mdi))
	demoStates(out, nodes)
	capture.Stop()
	fmt.Fprintln(out)
	return nil
}

// renderDemoConfig fills the embedded config for one node. A plain replacer
// rather than text/template: the template package keeps every exported
// method of reachable types in the binary (3 MB of the daemon's RSS).
func renderDemoConfig(d *demoNode) string {
	return strings.NewReplacer("{{.Name}}", d.Name, "{{.Priority}}", strconv.Itoa(d.Priority),
		"{{.Interval}}", d.Interval.String()).Replace(demoConfig)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func demoWaitAddr(d *demoNode, a netip.Addr, present bool, timeout time.Duration) error {
	if err := d.node.WaitAddr("eth0", a, present, timeout); err != nil {
		return fmt.Errorf("%s: %w\n%s", d.Name, err, d.proc.Log())
	}
	return nil
}

// demoWaitHolder waits until exactly want holds a.
func demoWaitHolder(nodes []*demoNode, a netip.Addr, want string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		var hs []string
		for _, d := range nodes {
			if d.proc != nil && d.proc.Exited() && d.Name != want {
				continue
			}
			if ok, err := d.node.HasAddr("eth0", a); err != nil {
				return "", err
			} else if ok {
				hs = append(hs, d.Name)
			}
		}
		if slices.Equal(hs, []string{want}) {
			return want, nil
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, d := range nodes {
				fmt.Fprintf(&logs, "--- %s ---\n%s\n", d.Name, d.proc.Log())
			}
			return "", fmt.Errorf("after %s, %s is held by %v, expected %s\n%s", timeout, a, hs, want, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// demoTakeover finds, on the bridge capture, the old master's last advert
// (or its priority-0 advert) and the new master's first advert after since.
func demoTakeover(c *nslab.Capture, old, new netip.Addr, since time.Time, zero bool) (time.Time, time.Time, error) {
	for range 100 {
		frames, err := c.Frames()
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		var last, first time.Time
		for _, f := range nslab.VRRPFrames(frames) {
			switch {
			case f.Src == old && !zero && f.Time.Before(since):
				last = f.Time
			case f.Src == old && zero && f.Priority == 0 && f.Time.After(since):
				last = f.Time
			case f.Src == new && f.Time.After(since) && !last.IsZero() && f.Time.After(last) && first.IsZero():
				first = f.Time
			}
		}
		if !last.IsZero() && !first.IsZero() {
			return last, first, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, time.Time{}, fmt.Errorf("the takeover did not show on the bridge capture")
}

// demoStates prints each node's last state change from its JSON log.
func demoStates(out io.Writer, nodes []*demoNode) {
	for _, d := range nodes {
		state, reason := "stopped", ""
		if d.proc != nil {
			sc := bufio.NewScanner(strings.NewReader(d.proc.Log()))
			for sc.Scan() {
				var rec map[string]any
				if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["msg"] != "vrrp state change" {
					continue
				}
				state, _ = rec["to"].(string)
				reason, _ = rec["reason"].(string)
			}
		}
		fmt.Fprintf(out, "      %s: %-7s %s\n", d.Name, state, reason)
	}
}
