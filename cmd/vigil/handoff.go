package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"vigil/node"
	"vigil/node/api"
)

// Coordinated handoff and drain (issue 14): vigil vrrp failover, vigil
// drain, vigil undrain.

func newVRRPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vrrp",
		Short: "Act on the fleet's VRRP instances",
	}
	cmd.AddCommand(newFailoverCmd())
	return cmd
}

func newFailoverCmd() *cobra.Command {
	var socket, output, to string
	var timeout time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "failover INSTANCE [--to NODE] [--force]",
		Short: "Move an instance's mastership to another node at once (maintenance)",
		Long: `Hand the mastership of INSTANCE's virtual router to a successor, through any
member of the fleet. The master tells the successor (the live, undrained
member in BACKUP with the highest effective priority, or --to NODE) over
gossip's reliable channel to take over on its resignation, then resigns with
a priority-0 advert: the successor becomes master on that advert, without
waiting Skew_Time. keepalived peers see an ordinary resignation.

The successor then holds mastership by the normal VRRP rules. When they would
give it back at once (the old master, or another member, has a higher
priority and preempts), the command says so and refuses unless --force; to
keep a node from being master, use vigil drain.

Exit status: 0 handed off, 1 refused or failed, 2 usage error.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("vigil vrrp failover", output); err != nil {
				return err
			}
			req, _ := json.Marshal(api.FailoverRequest{Instance: args[0], To: to, Force: force})
			body, err := adminSend(cmd.Context(), socket, "POST", "/v1/vrrp/failover", req, timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil vrrp failover: " + err.Error()}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var res node.HandoffResult
			if err := json.Unmarshal(body, &res); err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("vigil vrrp failover: unreadable answer from the daemon: %v", err)}
			}
			printHandoff(cmd.OutOrStdout(), res)
			return nil
		},
	}
	clientFlags(cmd, &socket, &output, &timeout)
	cmd.Flags().StringVar(&to, "to", "", "the successor (default: the best live member in BACKUP)")
	cmd.Flags().BoolVar(&force, "force", false, "hand off even if preemption would take mastership back")
	timeoutFlag := cmd.Flags().Lookup("timeout")
	timeoutFlag.DefValue, timeout = "15s", 15*time.Second
	return cmd
}

func printHandoff(w io.Writer, h node.HandoffResult) {
	confirmed := "not yet seen as master by gossip"
	if h.ConfirmedMS >= 0 {
		confirmed = fmt.Sprintf("seen as master by gossip after %.0f ms", h.ConfirmedMS)
	}
	fmt.Fprintf(w, "%s: %s → %s (%s, priority %d): %s\n", h.Instance, h.From, h.To, h.ToInstance, h.ToPriority, confirmed)
	for _, warn := range h.Warnings {
		fmt.Fprintf(w, "  warning (forced): %s\n", warn)
	}
}

func newDrainCmd(drain bool) *cobra.Command {
	var socket, output string
	var timeout time.Duration
	var force bool
	name, short, long := "undrain", "Let a drained node be master again", `Undrain NODE (default: the node whose daemon answers): its instances run at
their configured priorities again, and those that preempt take mastership
back by the normal VRRP rules.

Exit status: 0 done, 1 failed, 2 usage error.`
	if drain {
		name, short, long = "drain", "Hand off every instance a node is master of and keep it backup", `Drain NODE (default: the node whose daemon answers), for maintenance: every
instance it is master of is handed to a successor as by vigil vrrp failover,
and every instance runs at the lowest priority (1), so the node does not
become master while another member can be, until vigil undrain. Its checks
keep running; the drain is shown fleet-wide (vigil members) and survives a
restart (kept in the state directory).

It refuses when an instance it is master of has no other member that could
take over (live, undrained, in BACKUP), or is the address owner, unless
--force (VRRP then elects without coordination).

Exit status: 0 done, 1 refused or failed, 2 usage error.`
	}
	cmd := &cobra.Command{
		Use:   name + " [NODE]",
		Short: short,
		Long:  long,
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput("vigil "+name, output); err != nil {
				return err
			}
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			req, _ := json.Marshal(api.DrainRequest{Node: target, Drain: drain, Force: force})
			body, err := adminSend(cmd.Context(), socket, "POST", "/v1/drain", req, timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil " + name + ": " + err.Error()}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var res node.DrainResult
			if err := json.Unmarshal(body, &res); err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("vigil %s: unreadable answer from the daemon: %v", name, err)}
			}
			printDrain(cmd.OutOrStdout(), res)
			return nil
		},
	}
	clientFlags(cmd, &socket, &output, &timeout)
	if drain {
		cmd.Flags().BoolVar(&force, "force", false, "drain even if an instance has no successor")
	}
	timeoutFlag := cmd.Flags().Lookup("timeout")
	timeoutFlag.DefValue, timeout = "30s", 30*time.Second
	return cmd
}

func printDrain(w io.Writer, r node.DrainResult) {
	state := map[bool]string{true: "drained", false: "undrained"}[r.Drained]
	if !r.Changed {
		fmt.Fprintf(w, "%s: already %s\n", r.Node, state)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", r.Node, state)
	for _, h := range r.Handoffs {
		fmt.Fprint(w, "  ")
		printHandoff(w, h)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  warning (forced): %s\n", strings.TrimSpace(warn))
	}
}

// checkOutput checks a client command's -o value (a usage error, exit 2).
func checkOutput(command, output string) error {
	if output != "table" && output != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("%s: unknown output format %q (want table or json)", command, output)}
	}
	return nil
}
