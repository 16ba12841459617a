package node

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"vigil/vrrp/router"

	"vigil/config"
	"vigil/gossip"
	"vigil/telemetry"
)

// Fleet configuration pushes (issue 14): a push through any member is
// validated for every node the document names, numbered one above the
// highest version the member has seen, and announced by gossip (a small
// row; the document is fetched from a member that has it). A node whose
// local file says fleet: {config: follow} applies a newer version by the
// same reload as SIGHUP, all or nothing, keeps it (FleetState) and reports
// the version, or the error, in its summary.

// ErrPushInvalid refuses a pushed document that does not validate; the
// error lists every problem.
var ErrPushInvalid = errors.New("the fleet document is invalid")

// ErrPushConflict refuses a push whose --if-version is not the highest
// version seen.
var ErrPushConflict = errors.New("the fleet's version is not the one expected")

// fetchTimeout bounds one fetch of a document from a member.
const fetchTimeout = 10 * time.Second

type fleetConfig struct {
	f      *fleet
	self   string
	follow bool
	state  *config.FleetState // nil when the node does not follow
	// local is the local file's path: its node-local sections go into
	// every composed configuration.
	local string
	apply func(*config.Config) (ReloadReport, error)
	// loader composes every version this node applies: a version that
	// changes a few of many virtual servers parses only those.
	loader config.Loader

	// annRows are the members' announcements decoded at their row version
	// (the fleet loop reads every member's at every step; at 50 members
	// JSON decoding them was a fifth of a member's CPU during a rollout).
	annRows rowCache[gossip.ConfigAnnouncement]

	mu sync.Mutex
	// docs are documents this node can give to members: those pushed
	// through it and the one it applied, by hash.
	docs    map[string][]byte
	applied config.FleetVersion
	// failed holds the versions that failed here, not retried; lastErr is
	// the latest failure, reported in the summary.
	failed   map[config.FleetVersion]bool
	lastErr  string
	errVer   uint64
	applying bool
	// retryAt holds versions whose document could not be fetched: tried
	// again after fetchRetry, not marked failed.
	retryAt map[config.FleetVersion]time.Time
	// pushedBy is who pushed the applied version (its announcement), sig
	// its signature ("" unsigned: fleetsign.go).
	pushedBy, sig string
	// rejected counts documents refused for their signature.
	rejected *telemetry.ConfigRejected
	// ro is the rollout gate's and lost pushes' bookkeeping (fleetrollout.go).
	ro rolloutState
	// trace is the applied version's push trace (its announcement's), kept
	// in this node's re-announcement so members applying later join it.
	trace string
	// recorded is closed once the applied version's record is written
	// (nil before the first apply here).
	recorded chan struct{}
}

// fetchRetry is how long a node waits before fetching a document again.
const fetchRetry = 5 * time.Second

// errFetch marks a failure to get a document: worth another try.
var errFetch = errors.New("fetch failed")

func newFleetConfig(cfg *config.Config) (*fleetConfig, error) {
	fc := &fleetConfig{self: cfg.Node.Name, follow: cfg.Fleet.Follows(), local: cfg.Path, docs: map[string][]byte{},
		failed: map[config.FleetVersion]bool{}, retryAt: map[config.FleetVersion]time.Time{}, ro: newRolloutState()}
	if fc.follow {
		st, err := config.OpenFleetState(cfg.Fleet.StateDir)
		if err != nil {
			return nil, err
		}
		fc.state = st
		if v, ok := st.Applied(); ok {
			if doc, err := st.Document(v); err == nil {
				fc.docs[v.Hash] = doc
			}
			fc.applied = v
			if h := st.History(); len(h) > 0 {
				last := h[len(h)-1]
				fc.pushedBy, fc.sig = last.PushedBy, last.Signature
				// The plan travels in this node's re-announcement: a
				// restart in the middle of a canary rollout keeps the
				// rest of the fleet gated.
				if len(last.Plan) > 0 {
					if err := json.Unmarshal(last.Plan, &fc.ro.plan); err != nil {
						return nil, fmt.Errorf("fleet state in %s: the rollout plan of version %d: %w", cfg.Fleet.StateDir, v.Version, err)
					}
				}
			}
		}
	}
	return fc, nil
}

// provide answers members' fetches of documents (called from the
// cluster's Run: no blocking).
func (fc *fleetConfig) provide(key string) ([]byte, bool) {
	hash, ok := strings.CutPrefix(key, "fleet/")
	if !ok {
		return nil, false
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	doc, ok := fc.docs[hash]
	return doc, ok
}

// summary fills the fleet fields of this node's summary.
func (fc *fleetConfig) summary(s *gossip.NodeSummary) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	s.ConfigVersion = fc.applied.Version
	s.ConfigError, s.ConfigErrorVersion = fc.lastErr, fc.errVer
	fc.rolloutSummary(s)
}

// newer reports whether v is newer than the version this node runs (fc.mu
// held). The state on disk says the same once the version's record is
// written.
func (fc *fleetConfig) newer(v config.FleetVersion) bool {
	return fc.applied.Version == 0 || v.Compare(fc.applied) > 0
}

// fleetApplied is the fleet version this node runs (0: none).
func (fc *fleetConfig) fleetApplied() uint64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.applied.Version
}

// announcements returns the live members' announcements, this node's
// included.
func (fc *fleetConfig) announcements() []gossip.ConfigAnnouncement {
	var out []gossip.ConfigAnnouncement
	fc.annRows.each(fc.f.cl.Rows(gossip.KindConfig),
		func(r gossip.Row) bool { return !r.Deleted && (r.Origin == fc.self || fc.f.live(r.Origin)) },
		gossip.DecodeConfigAnnouncement, nil,
		func(_ gossip.Row, a gossip.ConfigAnnouncement) { out = append(out, a) })
	return out
}

// keepAnnounced announces the applied version as this node's own row when
// no live member's row announces it or a newer one (anns, this node's
// included): the node that took the push left, died or restarted without
// following. So an announcement lives while any member runs its version,
// and a node that joins later, or missed it, learns it. While the origin's
// row lives nobody else announces: at 50 members every member announcing
// after its apply was 49 rows, each sent to every member, per push.
func (fc *fleetConfig) keepAnnounced(anns []gossip.ConfigAnnouncement) {
	fc.mu.Lock()
	v := fc.applied
	fc.mu.Unlock()
	if v.Version == 0 {
		return
	}
	for _, a := range anns {
		if versionOf(a).Compare(v) >= 0 {
			return
		}
	}
	fc.announceApplied()
}

func versionOf(a gossip.ConfigAnnouncement) config.FleetVersion {
	return config.FleetVersion{Version: a.Version, Hash: a.Hash, Origin: a.Origin}
}

// highest is the highest version this node knows: announced or applied.
func (fc *fleetConfig) highest() uint64 {
	fc.mu.Lock()
	h := fc.applied.Version
	fc.mu.Unlock()
	for _, a := range fc.announcements() {
		h = max(h, a.Version)
	}
	return h
}

// push checks doc's signature sig ("" unsigned), validates doc for every
// node it names, and plan against them, numbers it and announces it with
// its plan.
func (fc *fleetConfig) push(ctx context.Context, doc []byte, sig, pushedBy string, ifVersion uint64, plan gossip.RolloutPlan) (v config.FleetVersion, err error) {
	// config.propose (issue 15): a child of the CLI's config.push when the
	// request carried its context; its own context rides in the
	// announcement, so every node's config.apply joins the same trace.
	_, span := fc.tracer().Start(ctx, "config.propose", trace.WithSpanKind(trace.SpanKindServer))
	defer func() {
		span.SetAttributes(attribute.Int64("vigil.config.version", int64(v.Version)), attribute.String("vigil.config.hash", v.Hash))
		endSpan(span, err)
	}()
	tp := ""
	if sc := span.SpanContext(); sc.IsValid() {
		tp = router.TraceParent(sc)
	}
	return fc.propose(doc, sig, pushedBy, ifVersion, plan, tp)
}

// propose is push's work; tp is the propose span's traceparent ("" none).
func (fc *fleetConfig) propose(doc []byte, sig, pushedBy string, ifVersion uint64, plan gossip.RolloutPlan, tp string) (config.FleetVersion, error) {
	keyID, err := fc.verifyPush(doc, sig)
	if err != nil {
		return config.FleetVersion{}, err
	}
	fd, err := config.ParseFleet(doc, "pushed document")
	if err != nil {
		return config.FleetVersion{}, fmt.Errorf("%w: %w", ErrPushInvalid, err)
	}
	var problems []error
	for _, name := range fd.Nodes() {
		if _, err := fd.Config(name); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return config.FleetVersion{}, fmt.Errorf("%w: %w", ErrPushInvalid, err)
	}
	if err := plan.Validate(fd.Nodes()); err != nil {
		return config.FleetVersion{}, err
	}
	h := fc.highest()
	if ifVersion != 0 && ifVersion != h {
		return config.FleetVersion{}, fmt.Errorf("%w: expected version %d, the fleet is at %d", ErrPushConflict, ifVersion, h)
	}
	v := config.FleetVersion{Version: config.NextFleetVersion(h), Hash: config.DocumentHash(doc), Origin: fc.self}
	fc.mu.Lock()
	fc.docs[v.Hash] = doc
	fc.ro.pushed[v] = true
	fc.mu.Unlock()
	a := gossip.ConfigAnnouncement{Version: v.Version, Hash: v.Hash, Origin: v.Origin, Size: len(doc), PushedBy: pushedBy, Signature: sig, KeyID: keyID, Plan: plan, Trace: tp}
	if !fc.f.put(gossip.KindConfig, gossip.KeyConfig, a.Encode, true) {
		return config.FleetVersion{}, fmt.Errorf("announcing fleet version %d failed (see the log)", v.Version)
	}
	fc.pruneDocs()
	fc.f.log.Info("fleet configuration pushed", "version", v.Version, "hash", v.Hash[:12], "pushed_by", pushedBy, "size", len(doc), "key_id", keyID,
		"order", cmp.Or(plan.Order, gossip.OrderBackupsFirst), "canary", plan.Canary)
	fc.f.poke()
	return v, nil
}

// step applies the best announced version if it is newer than the applied
// one (from the fleet loop; the work runs in its own goroutine).
func (fc *fleetConfig) step(ctx context.Context) {
	anns := fc.announcements()
	// A node that does not follow may have taken a push that lost.
	fc.noteLost(anns)
	if !fc.follow {
		return
	}
	fc.keepAnnounced(anns)
	best := bestAnnouncement(anns)
	if best == nil {
		return
	}
	v := versionOf(*best)
	now := time.Now()
	fc.mu.Lock()
	skip := fc.applying || fc.failed[v] || now.Before(fc.retryAt[v]) || !fc.newer(v)
	fc.mu.Unlock()
	// Only step's goroutine sets applying: it is still false below.
	if skip || !fc.release(*best, now) {
		return
	}
	fc.mu.Lock()
	fc.applying = true
	fc.mu.Unlock()
	go func() {
		err := fc.applyVersion(ctx, *best)
		fc.mu.Lock()
		fc.applying = false
		switch {
		case errors.Is(err, errFetch):
			fc.retryAt[v] = time.Now().Add(fetchRetry)
		case err != nil:
			fc.failed[v] = true
			// Bounded: it travels in the summary, one gossip row.
			fc.lastErr, fc.errVer = clip(err.Error(), maxConfigError), v.Version
		default:
			fc.lastErr, fc.errVer = "", 0
		}
		fc.mu.Unlock()
		if err != nil {
			fc.f.log.Error("fleet configuration not applied; the last good one stays", "version", v.Version, "origin", v.Origin, "err", err)
		}
		fc.f.poke()
	}()
}

// applyVersion fetches, checks, composes, applies and records one
// version, as a config.apply span in the push's trace (the announcement's
// context; a root span when it has none).
func (fc *fleetConfig) applyVersion(ctx context.Context, a gossip.ConfigAnnouncement) (err error) {
	sctx := context.Background()
	if sc := router.ParseTraceParent(a.Trace); sc.IsValid() {
		sctx = trace.ContextWithRemoteSpanContext(sctx, sc)
	}
	_, span := fc.tracer().Start(sctx, "config.apply", trace.WithAttributes(attribute.Int64("vigil.config.version", int64(a.Version)),
		attribute.String("vigil.config.hash", a.Hash), attribute.String("vigil.config.origin", a.Origin)))
	defer func() { endSpan(span, err) }()
	return fc.applyDocument(ctx, a)
}

// applyDocument is applyVersion's work.
func (fc *fleetConfig) applyDocument(ctx context.Context, a gossip.ConfigAnnouncement) error {
	v := versionOf(a)
	// The steps' durations go into the log line: where a slow rollout's
	// time goes on each member.
	t0 := time.Now()
	fc.mu.Lock()
	seen := fc.ro.gatedAt
	if fc.ro.gated != v {
		seen = t0
	}
	fc.mu.Unlock()
	doc, err := fc.document(ctx, a)
	if err != nil {
		return err
	}
	t1 := time.Now()
	label := fmt.Sprintf("fleet v%d", v.Version)
	keyID, err := fc.verifyApply(doc, label, a.Signature)
	if err != nil {
		return err
	}
	fd, err := config.ParseFleet(doc, label)
	if err != nil {
		return err
	}
	if !slices.Contains(fd.Nodes(), fc.self) {
		return fmt.Errorf("%s does not name this node (%s) under nodes:", label, fc.self)
	}
	local, err := config.ReadFile(fc.local)
	if err != nil {
		return fmt.Errorf("reading the local file: %w", err)
	}
	cfg, err := fd.ComposeWith(&fc.loader, fc.self, local, label)
	if err != nil {
		return err
	}
	cfg.Path, cfg.FleetVersion = fc.local, v.Version
	t2 := time.Now()
	if _, err := fc.apply(cfg); err != nil {
		return fmt.Errorf("applying %s: %w", label, err)
	}
	t3 := time.Now()
	recorded := make(chan struct{})
	fc.mu.Lock()
	fc.applied, fc.pushedBy, fc.sig, fc.ro.plan, fc.trace = v, a.PushedBy, a.Signature, a.Plan, a.Trace
	fc.docs[v.Hash] = doc
	fc.recorded = recorded
	fc.mu.Unlock()
	// The version runs: reported now (the summary), before the record's
	// writes, which on a busy disk take longer than the rest of the apply
	// and would hold back the members that wait for this report (a
	// master, --wait). A crash before the record restarts on the older
	// version, as it would have after the reload anyway, and that node
	// then applies this one again. history waits for the record.
	fc.f.poke()
	entry := config.FleetEntry{FleetVersion: v, Applied: t3, PushedBy: a.PushedBy, Signature: a.Signature}
	if !a.Plan.IsZero() {
		entry.Plan, _ = json.Marshal(a.Plan) // plain fields: cannot fail
	}
	if err := fc.state.Record(entry, doc); err != nil {
		// Applied but not kept: a restart would run the older version.
		fc.f.log.Error("fleet configuration applied but not recorded", "version", v.Version, "err", err)
	}
	close(recorded)
	fc.pruneDocs()
	fc.f.log.Info("fleet configuration applied", "version", v.Version, "hash", v.Hash[:12], "origin", v.Origin, "pushed_by", a.PushedBy, "key_id", keyID,
		"waited", t0.Sub(seen).Round(time.Microsecond), "fetch", t1.Sub(t0).Round(time.Microsecond), "compose", t2.Sub(t1).Round(time.Microsecond),
		"apply", t3.Sub(t2).Round(time.Microsecond), "record", time.Since(t3).Round(time.Microsecond))
	return nil
}

// pruneDocs forgets the documents this node no longer gives members: those
// of versions neither in its history nor pushed through it recently (at
// 520 kB a document, every push kept in memory for good added up).
func (fc *fleetConfig) pruneDocs() {
	keep := map[string]bool{}
	if fc.follow {
		for _, e := range fc.state.History() {
			keep[e.Hash] = true
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	keep[fc.applied.Hash] = true
	for v := range fc.ro.pushed {
		keep[v.Hash] = true
	}
	maps.DeleteFunc(fc.docs, func(hash string, _ []byte) bool { return !keep[hash] })
}

// document returns a version's document: known here, or fetched from its
// origin, else from any other live member, checked against its hash.
func (fc *fleetConfig) document(ctx context.Context, a gossip.ConfigAnnouncement) ([]byte, error) {
	fc.mu.Lock()
	doc, ok := fc.docs[a.Hash]
	fc.mu.Unlock()
	if ok {
		return doc, nil
	}
	sources := []string{a.Origin}
	for _, m := range fc.f.cl.MemberStates() {
		if m.Name != a.Origin && m.Name != fc.self && m.State == gossip.StateAlive {
			sources = append(sources, m.Name)
		}
	}
	var errs []error
	for _, src := range sources {
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		doc, err := fc.f.cl.Fetch(fctx, src, a.FetchKey())
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if config.DocumentHash(doc) != a.Hash {
			errs = append(errs, fmt.Errorf("the document from %s does not match its hash", src))
			continue
		}
		return doc, nil
	}
	return nil, fmt.Errorf("%w: fleet v%d: %w", errFetch, a.Version, errors.Join(errs...))
}

// announceApplied announces the applied version as this node's own row
// (at start, and when no live member announces it: keepAnnounced).
func (fc *fleetConfig) announceApplied() {
	fc.mu.Lock()
	v, by, sig, plan, tp := fc.applied, fc.pushedBy, fc.sig, fc.ro.plan, fc.trace
	size := len(fc.docs[v.Hash])
	fc.mu.Unlock()
	if v.Version == 0 {
		return
	}
	a := gossip.ConfigAnnouncement{Version: v.Version, Hash: v.Hash, Origin: v.Origin, Size: size, PushedBy: by, Signature: sig, KeyID: signerID(sig), Plan: plan, Trace: tp}
	fc.f.put(gossip.KindConfig, gossip.KeyConfig, a.Encode, false)
}

// ErrNotFollowing is returned by history and rollback on a node that does
// not follow the fleet: it keeps no history.
var ErrNotFollowing = errors.New("this node does not follow fleet pushes (fleet: {config: follow}): it keeps no history")

// history returns the versions this node applied, oldest first.
func (fc *fleetConfig) history() ([]config.FleetEntry, error) {
	if !fc.follow {
		return nil, ErrNotFollowing
	}
	// A version reported applied is in the history it answers: the
	// record's writes follow the report (applyDocument).
	fc.mu.Lock()
	recorded := fc.recorded
	fc.mu.Unlock()
	if recorded != nil {
		<-recorded
	}
	return fc.state.History(), nil
}

// rollback pushes the document of an applied version again, as a new
// version (versions never go backwards), with its signature; n 0 is the
// one before the applied version.
func (fc *fleetConfig) rollback(ctx context.Context, n uint64, pushedBy string, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	h, err := fc.history()
	if err != nil {
		return config.FleetVersion{}, err
	}
	if n == 0 {
		if len(h) < 2 {
			return config.FleetVersion{}, fmt.Errorf("%w: no version before the applied one", ErrPushInvalid)
		}
		n = h[len(h)-2].Version
	}
	i := slices.IndexFunc(h, func(e config.FleetEntry) bool { return e.Version == n })
	if i < 0 {
		return config.FleetVersion{}, fmt.Errorf("%w: version %d is not in this node's history (it keeps the last %d it applied)",
			ErrPushInvalid, n, config.FleetHistoryLength)
	}
	doc, err := fc.state.Document(h[i].FleetVersion)
	if err != nil {
		return config.FleetVersion{}, err
	}
	return fc.push(ctx, doc, h[i].Signature, pushedBy, 0, plan)
}

// tracer is the node's tracer (a no-op one when tracing is off).
func (fc *fleetConfig) tracer() trace.Tracer {
	if fc.f == nil || fc.f.tracer == nil {
		return noop.NewTracerProvider().Tracer("vigil")
	}
	return fc.f.tracer
}

// endSpan ends span, with err as its status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
