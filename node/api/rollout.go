package api

import (
	"fmt"
	"time"

	"vigil/gossip"
)

// RolloutRequest is the rollout plan of a push or a rollback (issue 14:
// --canary, --canary-hold, --order); its fields sit beside the request's
// own.
type RolloutRequest struct {
	Order      string   `json:"order,omitempty"`       // backups-first (default) or all
	Canary     []string `json:"canary,omitempty"`      // nodes that apply first
	CanaryHold string   `json:"canary_hold,omitempty"` // a Go duration ("30s"); default 30s
}

// Plan is the request's rollout plan; a bad hold is an ErrBadPlan (the
// rest is checked against the document by the push).
func (r RolloutRequest) Plan() (gossip.RolloutPlan, error) {
	p := gossip.RolloutPlan{Order: r.Order, Canary: r.Canary}
	if r.CanaryHold != "" {
		d, err := time.ParseDuration(r.CanaryHold)
		if err != nil {
			return p, fmt.Errorf("%w: canary_hold %q: %w", gossip.ErrBadPlan, r.CanaryHold, err)
		}
		p.CanaryHold = d
	}
	return p, nil
}
