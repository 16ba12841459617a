package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"vigil/node/config"
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
between instances. Every problem is printed with its path and value.

Exit status: 0 valid (warnings may be printed), 1 invalid, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return &exitError{code: 1, msg: formatConfigError(path, err)}
			}
			out := cmd.OutOrStdout()
			for _, w := range cfg.Warnings {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			fmt.Fprintf(out, "%s: OK (%d VRRP instances)\n", path, len(cfg.VRRP.Instances))
			return nil
		},
	}
	validate.Flags().StringVarP(&path, "config", "c", defaultConfigPath, "configuration file (YAML)")
	cmd.AddCommand(validate)
	return cmd
}
