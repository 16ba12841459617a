package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/internal/caps"
	"vigil/node"
	"vigil/node/api"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with configuration files",
	}
	var path string
	var fleet bool
	validate := &cobra.Command{
		Use:   "validate [--fleet FILE]",
		Short: "Check a configuration file and print every problem found",
		Long: `Check a configuration file offline: strict keys, types, ranges and the rules
between instances. Every problem is printed as FILE:LINE:COLUMN: path:
value and message. A feature that needs a capability this
process lacks (a script run as another user needs CAP_SETUID, CAP_SETGID and
CAP_KILL, for example) is warned about: run as the systemd unit runs the
daemon, this tells what would fail there.

With --fleet, FILE is a fleet document (one document for every director, with
a nodes: section of per-node values; see vigil config render): the
configuration of every node it names is rendered and checked, and each
problem is placed in that node's rendered document, FILE[NODE]:LINE:COLUMN
(the lines of vigil config render --node NODE FILE).

Exit status: 0 valid (warnings may be printed), 1 invalid, 2 usage error.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				path = args[0]
			}
			if fleet {
				return validateFleet(cmd, path)
			}
			// A Loader: the same result as config.Load, a large file's
			// virtual servers decoded on every core.
			cfg, err := (&config.Loader{}).Load(path)
			if err != nil {
				return &exitError{code: 1, msg: formatConfigError(path, err)}
			}
			out := cmd.OutOrStdout()
			for _, w := range cfg.Warnings {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			// Run as the unit's ExecStartPre, this process has the
			// daemon's capabilities: say which features will fail.
			for _, w := range caps.Missing(cfg) {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			fmt.Fprintf(out, "%s: OK (%d VRRP instances, %d virtual servers)\n", path, len(cfg.VRRP.Instances), len(cfg.LB.VirtualServers))
			return nil
		},
	}
	validate.Flags().StringVarP(&path, "config", "c", defaultConfigPath, "configuration file (YAML)")
	validate.Flags().BoolVar(&fleet, "fleet", false, "the file is a fleet document: check every node it names")
	validate.SetFlagErrorFunc(flagUsageError)
	cmd.AddCommand(validate, newConfigReloadCmd(), newConfigRenderCmd(), newConfigPushCmd(), newConfigHistoryCmd(), newConfigRollbackCmd(),
		newConfigKeygenCmd(), newConfigSignCmd(), newConfigSchemaCmd())
	cmd.AddCommand(newConfigImportKeepalivedCmd())
	return cmd
}

// readFleet reads and parses a fleet document.
func readFleet(path string) (*config.FleetDocument, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return config.ParseFleet(data, path)
}

// validateFleet is vigil config validate --fleet.
func validateFleet(cmd *cobra.Command, path string) error {
	fd, err := readFleet(path)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	out := cmd.OutOrStdout()
	var bad []string
	for _, name := range fd.Nodes() {
		cfg, err := fd.Config(name)
		if err != nil {
			bad = append(bad, name)
			fmt.Fprintf(out, "%s: INVALID\n%s\n", name, formatConfigError(path+"["+name+"]", err))
			continue
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(out, "%s: warning: %s\n", name, w)
		}
		fmt.Fprintf(out, "%s: OK (%d VRRP instances, %d virtual servers)\n", name, len(cfg.VRRP.Instances), len(cfg.LB.VirtualServers))
	}
	if len(bad) > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: invalid for %s", path, strings.Join(bad, ", "))}
	}
	return nil
}

func newConfigRenderCmd() *cobra.Command {
	var nodeName string
	cmd := &cobra.Command{
		Use:   "render --node NAME FILE",
		Short: "Print the configuration one node would run from a fleet document",
		Long: `Print, as YAML, the configuration node NAME would run from the fleet document
FILE: the shared part (vrrp:, lb:) with nodes.NAME's values merged over it.
Mappings merge key by key; lists of named items (instances, scripts, sync
groups, virtual servers) merge item by item by name, a new name being added;
anything else in the node's part replaces the shared value. node:, gossip:,
telemetry: and fleet: are a node's local settings and are refused in a fleet
document. Example: deploy/examples/fleet-lvs-dr.yaml.

Exit status: 0 printed, 1 invalid document or unknown node, 2 usage error.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodeName == "" {
				return flagUsageError(cmd, fmt.Errorf("--node NAME is required"))
			}
			fd, err := readFleet(args[0])
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			out, err := fd.Render(nodeName)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&nodeName, "node", "", "the node whose configuration to print")
	cmd.SetFlagErrorFunc(flagUsageError)
	return cmd
}

func newConfigReloadCmd() *cobra.Command {
	var socket, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running daemon re-read and apply its configuration file (like SIGHUP)",
		Long: `Ask the running vigil to re-read its configuration file, validate it and apply
the difference. Instances whose settings did not change keep their state and
timers; nothing is applied when the file is invalid, and every problem is
printed. Exit status: 0 applied, 1 invalid or daemon unreachable, 2 usage.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{code: 2, msg: fmt.Sprintf("vigil config reload: unknown output format %q (want text or json)", output)}
			}
			if socket == "" {
				socket = defaultSocket()
			}
			body, err := adminRequest(cmd.Context(), socket, "POST", "/v1/config/reload", timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil config reload: " + err.Error()}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(append(body, '\n'))
				return err
			}
			var rep node.ReloadReport
			if err := json.Unmarshal(body, &rep); err != nil {
				return &exitError{code: 1, msg: "vigil config reload: unreadable answer: " + err.Error()}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "reloaded (config sha256 %s)\n", shortHash(rep.Hash))
			for _, x := range []struct {
				what  string
				names []string
			}{{"added", rep.Added}, {"removed", rep.Removed}, {"restarted", rep.Restarted}, {"updated in place", rep.Updated}, {"unchanged", rep.Unchanged}} {
				if len(x.names) > 0 {
					fmt.Fprintf(out, "  %-17s %s\n", x.what+":", strings.Join(x.names, ", "))
				}
			}
			vs := rep.VirtualServers
			for _, x := range []struct {
				what  string
				names []string
			}{{"added", vs.Added}, {"removed", vs.Removed}, {"changed", vs.Changed}, {"unchanged", vs.Unchanged}} {
				if len(x.names) > 0 {
					fmt.Fprintf(out, "  virtual servers %-10s %s\n", x.what+":", strings.Join(x.names, ", "))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "admin socket of the daemon (default $VIGIL_SOCKET or "+api.DefaultSocket+")")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the daemon")
	return cmd
}

func newConfigPushCmd() *cobra.Command {
	var socket, pushedBy, sigFile string
	var timeout time.Duration
	var wait, unsigned bool
	var ifVersion uint64
	var ro rolloutFlags
	cmd := &cobra.Command{
		Use:   "push FILE [--wait] [--timeout D] [--if-version N] [--canary NODE,...] [--canary-hold D] [--order backups-first|all] [--signature SIG | --unsigned]",
		Short: "Push a fleet document to every member (applied by those that follow the fleet)",
		Long: `Push the fleet document FILE through this node's daemon: it is validated for
every node it names (as vigil config validate --fleet does), numbered one above
the highest version this node has seen, and announced to the fleet; each member
whose own file says fleet: {config: follow} fetches it, validates it for itself,
applies it by the same diff as a reload (unchanged instances undisturbed) and
keeps it across restarts. A member where it fails keeps its last good version
and reports the error.

--wait waits until every live member that follows reports the version applied
or an error, or holds it back because the rollout stopped, prints one line
per member (the failure, and those held back, named), and exits 1 unless all
applied it.
--if-version N refuses the push unless the fleet is at version N.

FILE.sig (vigil config sign), or the file --signature names, is sent along;
--unsigned sends none. A node whose own file lists trusted keys refuses an
unsigned push, or one not signed by them (422, the reason printed), and a
member with trusted keys does not apply such a version (reported by --wait).

` + rolloutHelp + `

Two pushes made during a partition may get the same number: the one with the
higher document hash wins everywhere; --wait on the other says it lost, and
which version won.

Exit status: 0 pushed (and, with --wait, applied everywhere), 1 refused,
invalid, failed somewhere or timed out, 2 usage error.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := ro.request(cmd)
			if err != nil {
				return err
			}
			doc, err := config.ReadFile(args[0])
			if err != nil {
				return &exitError{code: 1, msg: "vigil config push: " + err.Error()}
			}
			sig, err := pushSignature(args[0], doc, sigFile, unsigned)
			if err != nil {
				return &exitError{code: 1, msg: "vigil config push: " + err.Error()}
			}
			if sig != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "signed by key %s\n", signer(sig))
			}
			if pushedBy == "" {
				pushedBy = currentUser()
			}
			return sendPush(cmd, "push", "/v1/config/push", api.PushRequest{Document: string(doc), Signature: sig, PushedBy: pushedBy, IfVersion: ifVersion,
				RolloutRequest: plan}, socket, wait, ro.waitTimeout(cmd, timeout))
		},
	}
	pushFlags(cmd, &socket, &pushedBy, &wait, &timeout)
	ro.add(cmd)
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "refuse the push unless the fleet is at this version")
	cmd.Flags().StringVar(&sigFile, "signature", "", "the document's signature file (default FILE.sig when it exists)")
	cmd.Flags().BoolVar(&unsigned, "unsigned", false, "send no signature, even if FILE.sig exists")
	return cmd
}

// pushFlags are the flags push and rollback share.
func pushFlags(cmd *cobra.Command, socket, pushedBy *string, wait *bool, timeout *time.Duration) {
	cmd.Flags().StringVar(socket, "socket", defaultSocket(), "admin socket of the daemon (env "+socketEnv+")")
	cmd.Flags().BoolVar(wait, "wait", false, "wait until every following member applied it (or failed)")
	cmd.Flags().DurationVar(timeout, "timeout", time.Minute, "how long --wait waits, and the push's own request at least 30s (not given: 1m plus --canary-hold when there are canaries)")
	cmd.Flags().StringVar(pushedBy, "pushed-by", "", "who pushes, for the history (default: the user running the command)")
	cmd.SetFlagErrorFunc(flagUsageError)
}

// sendPush posts a push or rollback request, prints the version the fleet
// got and, with wait, waits for it (vigil config push, rollback).
func sendPush(cmd *cobra.Command, what, path string, request any, socket string, wait bool, timeout time.Duration) (err error) {
	// The push's trace (issue 15): config.push here, config.propose on the
	// node that takes it, config.apply on every node, one waterfall. The
	// CLI exports only where the OTEL_* variables say.
	ctx, end := cliSpan(cmd.Context(), "config."+what)
	defer func() { end(err) }()
	req, _ := json.Marshal(request)
	// The node validates the document for every node it names before it
	// answers: a large document for many nodes can take longer than the
	// usual 30 s, and --timeout says how long the operator will wait.
	body, err := adminSend(ctx, socket, "POST", path, req, max(timeout, 30*time.Second))
	if err != nil {
		return &exitError{code: 1, msg: "vigil config " + what + ": " + err.Error()}
	}
	var res api.PushResult
	if err := json.Unmarshal(body, &res); err != nil {
		return &exitError{code: 1, msg: "vigil config " + what + ": unreadable answer: " + err.Error()}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pushed fleet version %d (sha256 %s) through %s\n", res.Version, shortHash(res.Hash), res.Origin)
	if !wait {
		return nil
	}
	return waitApplied(cmd, socket, config.FleetVersion{Version: res.Version, Hash: res.Hash, Origin: res.Origin}, timeout)
}

// currentUser names who runs the command, for the push's history.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// waitApplied polls the members until every live member that follows has
// applied v, failed it or held it back (a stopped rollout), or v lost to
// a concurrent push, and prints one line each (waitOutcomeOf).
func waitApplied(cmd *cobra.Command, socket string, v config.FleetVersion, timeout time.Duration) error {
	out := cmd.OutOrStdout()
	deadline := time.Now().Add(timeout)
	for {
		body, err := adminGet(cmd.Context(), socket, "/v1/members", 5*time.Second)
		if err != nil {
			return &exitError{code: 1, msg: "vigil config push --wait: " + err.Error()}
		}
		var ms []node.MemberStatus
		if err := json.Unmarshal(body, &ms); err != nil {
			return &exitError{code: 1, msg: "vigil config push --wait: unreadable answer: " + err.Error()}
		}
		var lines []string
		pending, lost := false, false
		for _, m := range ms {
			o, line := waitOutcomeOf(m, v)
			if line != "" {
				lines = append(lines, line)
			}
			pending = pending || o == outPending
			lost = lost || o == outLost
		}
		if !pending || lost || time.Now().After(deadline) {
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return waitVerdict(v, ms, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func newConfigHistoryCmd() *cobra.Command {
	var socket, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "history [-o table|json]",
		Short: "List the fleet configuration versions this node applied (the last 20)",
		Long: `List the fleet configuration versions the running daemon applied, oldest first:
version, document hash, the node that took the push, when it was applied here
and who pushed it; NOTE says when a version lost to a concurrent push with
the same number, and to which. Only a node that follows the fleet keeps a history.
Exit status: 0 ok, 1 daemon unreachable, no fleet or not following, 2 usage.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput("vigil config history", output); err != nil {
				return err
			}
			body, err := adminGet(cmd.Context(), socket, "/v1/config/history", timeout)
			if err != nil {
				return &exitError{code: 1, msg: "vigil config history: " + err.Error()}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var hist []config.FleetEntry
			if err := json.Unmarshal(body, &hist); err != nil {
				return &exitError{code: 1, msg: "vigil config history: unreadable answer: " + err.Error()}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tHASH\tORIGIN\tAPPLIED\tPUSHED BY\tNOTE")
			for _, e := range hist {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Version, shortHash(e.Hash), e.Origin, e.Applied.Local().Format(time.RFC3339), orDash(e.PushedBy),
					historyNote(e))
			}
			return tw.Flush()
		},
	}
	clientFlags(cmd, &socket, &output, &timeout)
	return cmd
}

func newConfigRollbackCmd() *cobra.Command {
	var socket, pushedBy string
	var timeout time.Duration
	var wait bool
	var ro rolloutFlags
	cmd := &cobra.Command{
		Use:   "rollback [VERSION] [--wait] [--canary NODE,...] [--canary-hold D] [--order backups-first|all]",
		Short: "Push an earlier fleet version's document again, as a new version",
		Long: `Push again the document of fleet version VERSION from this node's history
(default: the version before the one it runs), as a new version: versions
never go backwards, so every node applies it like any push. --wait waits as
vigil config push --wait does; --canary, --canary-hold and --order stage
it as they stage a push.
Exit status: 0 pushed (and applied everywhere with --wait), 1 refused or
failed, 2 usage error.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v uint64
			if len(args) == 1 {
				n, err := strconv.ParseUint(args[0], 10, 64)
				if err != nil || n == 0 {
					return flagUsageError(cmd, fmt.Errorf("version %q: want a positive number", args[0]))
				}
				v = n
			}
			if pushedBy == "" {
				pushedBy = currentUser()
			}
			plan, err := ro.request(cmd)
			if err != nil {
				return err
			}
			return sendPush(cmd, "rollback", "/v1/config/rollback", api.RollbackRequest{Version: v, PushedBy: pushedBy, RolloutRequest: plan},
				socket, wait, ro.waitTimeout(cmd, timeout))
		},
	}
	pushFlags(cmd, &socket, &pushedBy, &wait, &timeout)
	ro.add(cmd)
	return cmd
}
