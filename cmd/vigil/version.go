package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"vigil/internal/buildinfo"
	"vigil/vrrp"
)

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, revision and protocol versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			out := struct {
				buildinfo.Info
				VRRPVersions []int `json:"vrrp_versions"`
			}{in, []int{2, 3}}
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			case "text", "":
				fmt.Fprintf(cmd.OutOrStdout(), "vigil %s (revision %s, %s)\nVRRP versions: 2 (RFC 3768), 3 (RFC 5798/9568); IP protocol %d\n",
					in.Version, orUnknown(in.Revision), in.GoVersion, vrrp.IPProtocol)
				return nil
			}
			return &exitError{code: 2, msg: fmt.Sprintf("vigil version: unknown output format %q (want text or json)", output)}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
