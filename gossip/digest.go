package gossip

import (
	"cmp"
	"slices"
)

// DesiredRow is a node's DesiredDigest as the store holds it.
type DesiredRow struct {
	Origin string
	Live   bool // the origin is an alive member and its rows are not stale
	D      DesiredDigest
}

// Divergent is a config that live members run but compute different
// desired IPVS tables from (issue 13: "desired-table digests that differ
// between live members with the same config version are reported as
// divergence").
type Divergent struct {
	ConfigVersion uint64
	ConfigHash    string
	Digests       map[string][]string // digest → nodes, sorted
}

// Divergence returns the configs (version and hash) for which live members
// report different table digests, sorted by version then hash. self's row
// counts as live whatever its Live says; rows without a digest (not
// computed yet) are ignored. Members that run different configs are not
// divergent: their tables may differ rightly while a config rolls out.
func Divergence(self string, rows []DesiredRow) []Divergent {
	type config struct {
		version uint64
		hash    string
	}
	groups := map[config]map[string][]string{}
	for _, r := range rows {
		if (!r.Live && r.Origin != self) || r.D.Digest == "" {
			continue
		}
		c := config{r.D.ConfigVersion, r.D.ConfigHash}
		if groups[c] == nil {
			groups[c] = map[string][]string{}
		}
		groups[c][r.D.Digest] = append(groups[c][r.D.Digest], r.Origin)
	}
	var out []Divergent
	for c, digests := range groups {
		if len(digests) < 2 {
			continue
		}
		for _, nodes := range digests {
			slices.Sort(nodes)
		}
		out = append(out, Divergent{ConfigVersion: c.version, ConfigHash: c.hash, Digests: digests})
	}
	slices.SortFunc(out, func(a, b Divergent) int {
		return cmp.Or(cmp.Compare(a.ConfigVersion, b.ConfigVersion), cmp.Compare(a.ConfigHash, b.ConfigHash))
	})
	return out
}
