package main

import (
	"github.com/spf13/cobra"

	"vigil/config"
)

func newConfigSchemaCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "schema [--markdown]",
		Short: "Print the JSON Schema of vigil.yaml (or the Markdown reference)",
		Long: `Print the JSON Schema (draft 2020-12) of vigil.yaml, for editors' completion
and validation. With yaml-language-server (VS Code's YAML extension, and others):

  vigil config schema > vigil.schema.json
  # then, as vigil.yaml's first line:
  # yaml-language-server: $schema=vigil.schema.json

With --markdown, print the configuration reference instead
(docs/config-reference.md is this output).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := config.Markdown()
			if !markdown {
				var err error
				if out, err = config.JSONSchema(); err != nil {
					return &exitError{code: 1, msg: "vigil config schema: " + err.Error()}
				}
			}
			_, err := cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the Markdown reference instead")
	cmd.SetFlagErrorFunc(flagUsageError)
	return cmd
}
