package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vigil/gossip"
	"vigil/node"
	"vigil/node/api"
)

// The fleet's client commands: vigil members, vigil status --fleet, vigil
// gossip keygen and vigil gossip keys.

func newMembersCmd() *cobra.Command {
	var socket, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the fleet's members as this node's gossip sees them",
		Long: `Ask the running daemon for the fleet's members: per member its name, gossip
address, state (alive, suspect, dead, left), config version and hash, drift
against the fleet version (in-sync; behind: on its way or held back by the
rollout; failed: a newer version failed there; not-following), build, VRRP
instances with their states, whether it is drained, and the age of its
last summary as this node received it.

-o json prints the daemon's /v1/members document (stable snake_case keys).
The socket is --socket, else $VIGIL_SOCKET, else ` + api.DefaultSocket + `.
Exit status: 0 ok, 1 daemon unreachable, no fleet or error, 2 usage error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput("vigil members", output); err != nil {
				return err
			}
			body, err := adminGet(cmd.Context(), socket, "/v1/members", timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil members: " + err.Error()}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var ms []node.MemberStatus
			if err := json.Unmarshal(body, &ms); err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("vigil members: unreadable answer from the daemon: %v", err)}
			}
			return printMembers(cmd.OutOrStdout(), ms)
		},
	}
	clientFlags(cmd, &socket, &output, &timeout)
	return cmd
}

// clientFlags are the flags every admin-socket client command has.
func clientFlags(cmd *cobra.Command, socket, output *string, timeout *time.Duration) {
	cmd.SetFlagErrorFunc(flagUsageError)
	cmd.Flags().StringVar(socket, "socket", defaultSocket(), "admin socket of the daemon (env "+socketEnv+")")
	if output != nil {
		cmd.Flags().StringVarP(output, "output", "o", "table", "output format: table or json")
	}
	cmd.Flags().DurationVar(timeout, "timeout", 5*time.Second, "how long to wait for the daemon")
}

func printMembers(w io.Writer, ms []node.MemberStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tCONFIG\tDRIFT\tBUILD\tINSTANCES\tDRAINED\tSUMMARY AGE")
	for _, m := range ms {
		var insts []string
		for _, name := range slices.Sorted(maps.Keys(m.Instances)) {
			insts = append(insts, name+"="+m.Instances[name])
		}
		age := "-"
		if m.SummaryAge >= 0 {
			age = ago(time.Duration(m.SummaryAge * float64(time.Second)))
		}
		cfg := shortHash(m.ConfigHash)
		if m.ConfigVersion > 0 {
			cfg = fmt.Sprintf("v%d %s", m.ConfigVersion, cfg)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", m.Name, m.Address, m.State, orDash(cfg), orDash(m.Drift), orDash(m.Build),
			orDash(strings.Join(insts, ",")), m.Drained, age)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printFleet is vigil status --fleet's table.
func printFleet(w io.Writer, st *node.FleetStatus) error {
	fmt.Fprintf(w, "Fleet view of %s\n\nVirtual routers:\n", st.Node)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tVRID\tFAMILY\tMASTERS\tMEMBERS")
	for _, vr := range st.VirtualRouters {
		var ms []string
		for _, m := range vr.Members {
			ms = append(ms, fmt.Sprintf("%s:%s(%d)", m.Node, strings.ToLower(m.State), m.Priority))
		}
		masters := strings.Join(vr.Masters, ",")
		switch len(vr.Masters) {
		case 0:
			masters = "NONE"
		case 1:
		default:
			masters += " (SPLIT BRAIN)"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\n", vr.Name, vr.VRID, vr.Family, masters, strings.Join(ms, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.VirtualServers) > 0 {
		fmt.Fprintln(w, "\nVirtual servers:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  VIRTUAL SERVER\tPOLICY\tREAL SERVER\tFLEET\tUP/FRESH\tLOCAL\tDISAGREE")
		for _, vs := range st.VirtualServers {
			for _, rs := range vs.RealServers {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", vs.Name, vs.Policy, rs.Address, upDown(rs.Up), rs.UpCount, rs.Fresh,
					upDown(rs.Local), orDash(strings.Join(rs.Dissenters, ",")))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, d := range st.Divergence {
		fmt.Fprintf(w, "\nDIVERGENCE: members with fleet version %d and lb section %s want different IPVS tables:\n", d.ConfigVersion, shortHash(d.ConfigHash))
		for _, dg := range slices.Sorted(maps.Keys(d.Digests)) {
			fmt.Fprintf(w, "  %s: %s\n", dg, strings.Join(d.Digests[dg], ", "))
		}
	}
	return nil
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func newGossipCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gossip",
		Short: "Gossip keys: make one, rotate them fleet-wide",
	}
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip key (base64, AES-256) on stdout",
		Long: `Print a new random 32-byte key in base64 on stdout. A keyring file holds one key
per line, the first one primary:

  vigil gossip keygen > /etc/vigil/gossip.key && chmod 600 /etc/vigil/gossip.key`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return &exitError{code: 1, msg: "vigil gossip keygen: " + err.Error()}
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(k))
			return err
		},
	}
	keygen.SetFlagErrorFunc(flagUsageError)
	cmd.AddCommand(keygen, newKeysCmd())
	return cmd
}

func newKeysCmd() *cobra.Command {
	var socket string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "keys list | install KEY | use KEY | remove KEY",
		Short: "Rotate the gossip keyring on every live member",
		Long: `Change the gossip keyring of every live member through this node's daemon,
without losing membership (serf's model). Rotation:

  NEW=$(vigil gossip keygen)
  vigil gossip keys install "$NEW"   # every member can now read NEW
  vigil gossip keys use "$NEW"       # every member now writes with NEW
  vigil gossip keys remove "$OLD"    # OLD is no longer accepted

Each member rewrites its keyring file, so a restart keeps the keys. The
result lists every member with its answer; members that did not answer are
listed too. Exit status: 0 when every live member applied it, 1 otherwise,
2 usage error.`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, key := args[0], ""
			switch {
			case op == "list" && len(args) == 1:
			case (op == "install" || op == "use" || op == "remove") && len(args) == 2:
				key = args[1]
			default:
				return flagUsageError(cmd, fmt.Errorf("want list, or install|use|remove KEY"))
			}
			req, _ := json.Marshal(api.KeysRequest{Op: op, Key: key})
			body, err := adminSend(cmd.Context(), socket, "POST", "/v1/gossip/keys", req, timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil gossip keys " + op + ": " + err.Error()}
			}
			var res []gossip.KeyResult
			if err := json.Unmarshal(body, &res); err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("vigil gossip keys: unreadable answer from the daemon: %v", err)}
			}
			return printKeyResults(cmd.OutOrStdout(), op, res)
		},
	}
	clientFlags(cmd, &socket, nil, &timeout)
	timeoutFlag := cmd.Flags().Lookup("timeout")
	timeoutFlag.DefValue, timeout = "15s", 15*time.Second
	return cmd
}

func printKeyResults(w io.Writer, op string, res []gossip.KeyResult) error {
	failed := 0
	for _, r := range res {
		if r.Err != "" {
			failed++
			fmt.Fprintf(w, "%s: FAILED: %s\n", r.Node, r.Err)
			continue
		}
		if op == "list" {
			fmt.Fprintf(w, "%s:\n", r.Node)
			for i, k := range r.Keys {
				mark := ""
				if i == 0 {
					mark = " (primary)"
				}
				fmt.Fprintf(w, "  %s%s\n", k, mark)
			}
			continue
		}
		fmt.Fprintf(w, "%s: ok\n", r.Node)
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("vigil gossip keys %s: %d of %d members did not apply it", op, failed, len(res))}
	}
	return nil
}
