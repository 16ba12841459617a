package main

import (
	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/deploy/k8s"
	"vigil/internal/buildinfo"
)

func newManifestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Print deployment manifests",
	}
	o := k8s.Defaults(buildinfo.Get().Version)
	var configPath, keyringPath string
	ds := &cobra.Command{
		Use:   "daemonset [flags]",
		Short: "Print a Kubernetes DaemonSet running vigil on the director nodes",
		Long: `Print a Kubernetes DaemonSet (apps/v1) that runs vigil on every node with the
node selector's label: host network, capabilities NET_ADMIN and NET_RAW only,
a read-only root file system, node.name from the node's name, the config from
a ConfigMap, the gossip keyring from a Secret, probes on /healthz and /readyz.

With --with-config FILE the ConfigMap holding FILE is printed too, and with
--with-gossip-keyring FILE the Secret; otherwise they are expected to exist.
The nodes need the ip_vs modules loaded (a pod cannot load them): the
manifest's first comment says how.

  vigil manifest daemonset --with-config vigil.yaml | kubectl apply -f -`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath != "" {
				data, err := config.ReadFile(configPath)
				if err != nil {
					return &exitError{code: 1, msg: "vigil manifest daemonset: " + err.Error()}
				}
				o.Config = data
			}
			if keyringPath != "" {
				data, err := config.ReadFile(keyringPath)
				if err != nil {
					return &exitError{code: 1, msg: "vigil manifest daemonset: " + err.Error()}
				}
				o.Keyring = data
			}
			out, err := k8s.Render(o)
			if err != nil {
				return &exitError{code: 2, msg: "vigil manifest daemonset: " + err.Error()}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f := ds.Flags()
	f.StringVarP(&o.Namespace, "namespace", "n", o.Namespace, "namespace of the DaemonSet, ConfigMap and Secret")
	f.StringVar(&o.Name, "name", o.Name, `name of the DaemonSet; the ConfigMap is NAME-config`)
	f.StringVar(&o.Image, "image", o.Image, "container image")
	f.StringToStringVar(&o.NodeSelector, "node-selector", o.NodeSelector, "labels of the director nodes (KEY=VALUE,...)")
	f.StringVar(&o.GossipSecret, "gossip-secret", o.GossipSecret, `Secret with the gossip keyring under the key "keyring"; "" runs each node alone (no fleet)`)
	f.StringVar(&configPath, "with-config", "", "also print the ConfigMap with this vigil.yaml")
	f.StringVar(&keyringPath, "with-gossip-keyring", "", "also print the gossip Secret with this keyring file (see vigil gossip keygen)")
	f.BoolVar(&o.UserScripts, "user-scripts", false, "add SETUID, SETGID and KILL: scripts, notify commands or checks run with user: or vrrp.script_user")
	f.BoolVar(&o.HostPID, "host-pid", false, "share the host's process namespace: vrrp.processes trackers watch host processes")
	ds.SetFlagErrorFunc(flagUsageError)
	cmd.AddCommand(ds)
	return cmd
}
