package main

import (
	"encoding/json"
	"fmt"
	"strings"
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
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration file and print every problem found",
		Long: `Check a configuration file offline: strict keys, types, ranges and the rules
between instances. Every problem is printed as FILE:LINE:COLUMN: path:
value and message. A feature that needs a capability this
process lacks (a script run as another user needs CAP_SETUID, CAP_SETGID and
CAP_KILL, for example) is warned about: run as the systemd unit runs the
daemon, this tells what would fail there.

Exit status: 0 valid (warnings may be printed), 1 invalid, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	cmd.AddCommand(validate, newConfigReloadCmd())
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
