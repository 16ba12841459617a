package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "vigil",
		Short: "High-availability fabric for Linux load-balancer fleets (VRRP, IPVS, gossip)",
		Long: `vigil keeps virtual IPs and Linux IPVS tables alive across a fleet of directors.
Every node speaks standards-compliant VRRP (RFC 3768, 5798, 9568) on the wire.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd(), newRunCmd(), newConfigCmd(), newDemoCmd())
	root.AddCommand(newStatusCmd(), newIPVSCmd(), newMembersCmd(), newGossipCmd())
	root.AddCommand(newVRRPCmd(), newDrainCmd(true), newDrainCmd(false), newDocsCmd())
	root.AddCommand(newManifestCmd())
	return root
}
