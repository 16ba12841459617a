package gossip

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Rollout plans of fleet pushes (issue 14: "--canary applies on the named
// nodes first, waits until they report applied and healthy ... for
// --canary-hold, default 30 s, then releases the rest. --order
// backups-first (the default) applies on nodes that are master of nothing
// before masters"). The plan travels in the push's ConfigAnnouncement, so
// every member gates itself by the same rule.

// Rollout orders.
const (
	OrderBackupsFirst = "backups-first" // the default: masters of nothing, then masters
	OrderAll          = "all"           // everyone at once (after the canaries)
)

// DefaultCanaryHold is how long canaries must stay applied and healthy
// before the rest of the fleet is released (issue 14).
const DefaultCanaryHold = 30 * time.Second

// ErrBadPlan is a rollout plan that cannot be followed: an unknown order, a
// canary the document does not name, a negative hold.
var ErrBadPlan = errors.New("bad rollout plan")

// RolloutPlan is how a pushed version rolls out. The zero plan is
// backups-first without canaries: what a version announced by an older
// vigil, or re-announced without its plan, gets.
type RolloutPlan struct {
	Order      string        `json:"or,omitempty"`  // OrderBackupsFirst ("" too) or OrderAll
	Canary     []string      `json:"ca,omitempty"`  // nodes that apply first
	CanaryHold time.Duration `json:"chd,omitempty"` // 0: DefaultCanaryHold
}

// IsZero reports whether the plan is the default one.
func (p RolloutPlan) IsZero() bool { return p.Order == "" && len(p.Canary) == 0 && p.CanaryHold == 0 }

// Hold is how long the canaries must stay healthy.
func (p RolloutPlan) Hold() time.Duration {
	if p.CanaryHold <= 0 {
		return DefaultCanaryHold
	}
	return p.CanaryHold
}

// BackupsFirst reports whether masters wait for the other nodes.
func (p RolloutPlan) BackupsFirst() bool { return p.Order != OrderAll }

// IsCanary reports whether name is one of the plan's canaries.
func (p RolloutPlan) IsCanary(name string) bool { return slices.Contains(p.Canary, name) }

// Validate checks the plan against the nodes the document names.
func (p RolloutPlan) Validate(nodes []string) error {
	var errs []error
	if p.Order != "" && p.Order != OrderAll && p.Order != OrderBackupsFirst {
		errs = append(errs, fmt.Errorf("order %q: want %s or %s", p.Order, OrderBackupsFirst, OrderAll))
	}
	if p.CanaryHold < 0 {
		errs = append(errs, fmt.Errorf("canary hold %s: must not be negative", p.CanaryHold))
	}
	for i, c := range p.Canary {
		switch {
		case !slices.Contains(nodes, c):
			errs = append(errs, fmt.Errorf("canary %q: the document names no such node under nodes: (it names %v)", c, nodes))
		case slices.Contains(p.Canary[:i], c):
			errs = append(errs, fmt.Errorf("canary %q: named twice", c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPlan, err)
	}
	return nil
}
