package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/config/kaimport"
	"vigil/internal/kaconf"
)

func newConfigImportKeepalivedCmd() *cobra.Command {
	var out, configID, nodeName string
	var offHost bool
	cmd := &cobra.Command{
		Use:   "import-keepalived FILE [-o vigil.yaml] [--config-id ID] [--node-name NAME] [--off-host]",
		Short: "Translate a keepalived.conf into a vigil configuration",
		Long: `Read a keepalived configuration as keepalived 2.2 does (includes, @ID lines,
$NAME parameters, ~SEQ/~LST generators) and write the equivalent vigil YAML,
each value commented with the keepalived FILE:LINE it came from.

On stderr: every keyword that could not be carried over, as
FILE:LINE: keyword: reason, then the settings whose meaning differs and were
translated (keepalived's state MASTER, its VRRPv2 and UDP defaults, HTTP/1.0
checks, tracker weights, legacy keyword names, ...), as notes.

The document is checked as vigil config validate checks a file (scripts and
notify programs must exist on this host, users must be known); with
--off-host, for a file meant for another machine, programs, users and the
notify FIFO's directory are not looked up here (every other rule applies).
The output file is written with mode 0640: it may hold VRRP passwords.

Exit status: 0 complete, 3 partial (something was dropped), 1 invalid input
(a keepalived syntax error, or a document vigil's validation refuses),
2 usage error.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return importKeepalived(cmd, args[0], out, configID, nodeName, offHost)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the YAML to this file (default stdout)")
	cmd.Flags().StringVar(&configID, "config-id", "", "keepalived's config id for @ID lines (default: the short host name, as keepalived -i)")
	cmd.Flags().StringVar(&nodeName, "node-name", "", "node.name of the result (default: global_defs router_id, else vigil uses the host name)")
	cmd.Flags().BoolVar(&offHost, "off-host", false, "the result is for another machine: do not look up its programs, users and FIFO directory here")
	cmd.SetFlagErrorFunc(flagUsageError)
	return cmd
}

// importKeepalived is vigil config import-keepalived.
func importKeepalived(cmd *cobra.Command, path, out, configID, nodeName string, offHost bool) error {
	stderr := cmd.ErrOrStderr()
	f, err := kaconf.Parse(path, kaconf.Options{ConfigID: configID})
	if err != nil {
		return &exitError{code: 1, msg: "vigil config import-keepalived: " + err.Error()}
	}
	res, err := kaimport.Translate(f, kaimport.Options{NodeName: nodeName})
	if err != nil {
		return &exitError{code: 1, msg: "vigil config import-keepalived: " + err.Error()}
	}
	if err := res.Report(stderr); err != nil {
		return &exitError{code: 1, msg: "vigil config import-keepalived: " + err.Error()}
	}
	// The same check as vigil config validate, on the bytes written.
	name := out
	if name == "" {
		name = "(output)"
	}
	parse, hint := config.Parse, "\n(checked against this host's programs and users: run the import on the director, or give --off-host)"
	if offHost {
		parse, hint = config.ParseOffHost, ""
	}
	cfg, verr := parse(res.YAML)
	if verr != nil {
		return &exitError{code: 1, msg: "vigil config import-keepalived: the translated document is not valid:\n" +
			strings.ReplaceAll(formatConfigError(name, verr), "\n", "\n  ") + hint}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if out == "" {
		if _, err := cmd.OutOrStdout().Write(res.YAML); err != nil {
			return &exitError{code: 1, msg: "vigil config import-keepalived: " + err.Error()}
		}
	} else if err := os.WriteFile(out, res.YAML, 0o640); err != nil {
		return &exitError{code: 1, msg: "vigil config import-keepalived: " + err.Error()}
	}
	if !res.Complete() {
		return &exitError{code: 3, msg: fmt.Sprintf("vigil config import-keepalived: partial: %d keyword(s) not carried over (listed above)", len(res.Dropped))}
	}
	return nil
}
