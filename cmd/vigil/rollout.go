package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/gossip"
	"vigil/node"
	"vigil/node/api"
)

// Staged rollouts of vigil config push and rollback (issue 14): the
// --canary, --canary-hold and --order flags, and how --wait judges each
// member.

// rolloutFlags are the rollout plan's flags.
type rolloutFlags struct {
	canary []string
	hold   time.Duration
	order  string
}

func (r *rolloutFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&r.canary, "canary", nil, "nodes that apply it first (comma-separated); the rest waits until they report it applied and healthy for --canary-hold")
	cmd.Flags().DurationVar(&r.hold, "canary-hold", gossip.DefaultCanaryHold, "how long the canaries must stay healthy (no FAULT, no quorum lost) before the rest is released")
	cmd.Flags().StringVar(&r.order, "order", gossip.OrderBackupsFirst, "backups-first (nodes master of nothing, then masters) or all (everyone at once, after the canaries)")
}

// request checks the flags and returns the plan for the API; a bad one is
// a usage error.
func (r *rolloutFlags) request(cmd *cobra.Command) (api.RolloutRequest, error) {
	if r.order != gossip.OrderBackupsFirst && r.order != gossip.OrderAll {
		return api.RolloutRequest{}, flagUsageError(cmd, fmt.Errorf("--order %q: want %s or %s", r.order, gossip.OrderBackupsFirst, gossip.OrderAll))
	}
	if r.hold < 0 {
		return api.RolloutRequest{}, flagUsageError(cmd, fmt.Errorf("--canary-hold %s: must not be negative", r.hold))
	}
	req := api.RolloutRequest{Order: r.order, Canary: r.canary}
	if cmd.Flags().Changed("canary-hold") {
		req.CanaryHold = r.hold.String()
	}
	return req, nil
}

// waitTimeout is --wait's timeout: the flag's, or when not given one
// minute plus the canary hold, which the rollout spends waiting.
func (r *rolloutFlags) waitTimeout(cmd *cobra.Command, timeout time.Duration) time.Duration {
	if cmd.Flags().Changed("timeout") || len(r.canary) == 0 {
		return timeout
	}
	return timeout + r.hold
}

// rolloutHelp is the flags' part of push's and rollback's help.
const rolloutHelp = `--canary NODE,... applies it on those nodes first; the others wait until
every canary reports it applied and healthy (no instance in FAULT, no virtual
server below its quorum) for --canary-hold (default 30s). --order backups-first
(the default) applies it on the nodes master of nothing before the masters;
--order all on everyone at once (after the canaries). A node where it fails
keeps its last good version and the rollout stops: the nodes that have not
applied it keep theirs (--wait shows them "held back"), until a newer push.
Without --timeout, --wait waits one minute plus the canary hold.`

// waitOutcome is how a member stands for push --wait.
type waitOutcome int

const (
	outPending waitOutcome = iota // not there yet
	outApplied                    // runs the version or a later one
	outFailed                     // the version failed there
	outHeld                       // the rollout stopped before it applied it
	outLost                       // runs a version with the same number that won over it
	outIgnored                    // not live, or does not follow pushes
)

// waitOutcomeOf judges a member for pushed version v and says it in a
// line ("" for a member not live).
func waitOutcomeOf(m node.MemberStatus, v config.FleetVersion) (waitOutcome, string) {
	if m.State != "alive" && m.State != "suspect" {
		return outIgnored, ""
	}
	runs := config.FleetVersion{Version: m.ConfigVersion, Hash: m.ConfigFleetHash, Origin: m.ConfigOrigin}
	switch {
	case m.Drift == node.DriftNotFollowing:
		return outIgnored, fmt.Sprintf("%s: does not follow fleet pushes (runs its own file)", m.Name)
	case runs.Version > v.Version || (runs.Version == v.Version && (runs.Hash == "" || runs == v)):
		return outApplied, fmt.Sprintf("%s: applied version %d", m.Name, runs.Version)
	case runs.Version == v.Version && runs.Compare(v) > 0:
		return outLost, fmt.Sprintf("%s: runs version %d from %s (sha256 %s), which won over this push", m.Name, runs.Version, runs.Origin, shortHash(runs.Hash))
	case m.ConfigErrorVersion == v.Version && m.ConfigError != "":
		return outFailed, fmt.Sprintf("%s: FAILED version %d (runs %d): %s", m.Name, v.Version, m.ConfigVersion, m.ConfigError)
	case m.RolloutVersion == v.Version && m.RolloutStopped:
		return outHeld, fmt.Sprintf("%s: held back, the rollout stopped (runs %d): %s", m.Name, m.ConfigVersion, m.Rollout)
	case m.RolloutVersion == v.Version && m.Rollout != "":
		return outPending, fmt.Sprintf("%s: not applied (runs %d): %s", m.Name, m.ConfigVersion, m.Rollout)
	}
	return outPending, fmt.Sprintf("%s: not applied (runs %d)", m.Name, m.ConfigVersion)
}

// waitVerdict is --wait's end: nil when every live follower applied v.
func waitVerdict(v config.FleetVersion, ms []node.MemberStatus, timeout time.Duration) error {
	by := map[waitOutcome][]string{}
	var winner string
	for _, m := range ms {
		o, _ := waitOutcomeOf(m, v)
		by[o] = append(by[o], m.Name)
		if o == outLost && winner == "" {
			winner = fmt.Sprintf("version %d from %s (sha256 %s)", m.ConfigVersion, m.ConfigOrigin, shortHash(m.ConfigFleetHash))
		}
	}
	msg := ""
	switch {
	case winner != "":
		msg = fmt.Sprintf("version %d (sha256 %s, through %s) lost to %s, pushed concurrently: the fleet converges on that one", v.Version,
			shortHash(v.Hash), v.Origin, winner)
	case len(by[outFailed]) > 0:
		msg = fmt.Sprintf("version %d failed on %s: the rollout stopped", v.Version, strings.Join(by[outFailed], ", "))
		if held := append(by[outHeld], by[outPending]...); len(held) > 0 {
			msg += "; held back: " + strings.Join(held, ", ")
		}
	case len(by[outHeld]) > 0:
		msg = fmt.Sprintf("version %d: the rollout stopped; held back: %s", v.Version, strings.Join(by[outHeld], ", "))
	case len(by[outPending]) > 0:
		msg = fmt.Sprintf("version %d not applied on %s within %s (slow, or a canary hold longer than --timeout)", v.Version,
			strings.Join(by[outPending], ", "), timeout)
	default:
		return nil
	}
	return &exitError{code: 1, msg: "vigil config push: " + msg}
}

// historyNote is the NOTE column of vigil config history.
func historyNote(e config.FleetEntry) string {
	if e.LostTo == nil {
		return "-"
	}
	return fmt.Sprintf("lost to version %d from %s (sha256 %s)", e.LostTo.Version, e.LostTo.Origin, shortHash(e.LostTo.Hash))
}
