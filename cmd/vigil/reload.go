package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"vigil/config"
	"vigil/node"
	"vigil/node/api"
	"vigil/telemetry"
)

// reloadGCPercent is the GC setting while a reload parses and applies.
const reloadGCPercent = 400

// steadyGCPercent is the daemon's GC setting once started (unless GOGC is
// set). A node with 200 VRRP instances and gossip has about 4 MB of live
// heap and makes a few MB of garbage a second (gossip packets, metric
// scrapes): 25 rather than 50 took about 1 MiB off its RSS (27.4-27.8 ->
// 25.2-26.8 MiB) for 0.1-0.4 % of a core more in the collector
// (BenchmarkFleetResources, docs/benchmarks.md).
const steadyGCPercent = 25

// reloader re-reads the configuration file and applies it (SIGHUP and
// POST /v1/config/reload). Nothing is applied when the file is invalid:
// every problem is logged and returned, and the running configuration
// stays.
type reloader struct {
	mu      sync.Mutex
	path    string
	loader  *config.Loader
	n       *node.Node
	log     *slog.Logger
	metrics *telemetry.Config
	// applied is the hash of the file the node last applied in full; a
	// reload that failed part-way clears it, so the same file is tried
	// again.
	applied string
	// tracer makes the config.reload span (nil: none).
	tracer trace.Tracer
}

// reload is one reload, traced as a config.reload span (issue 15).
func (r *reloader) reload(trigger string) (node.ReloadReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tr := r.tracer
	if tr == nil {
		tr = noop.NewTracerProvider().Tracer("vigil")
	}
	_, span := tr.Start(context.Background(), "config.reload", trace.WithAttributes(attribute.String("vigil.config.trigger", trigger)))
	defer span.End()
	rep, err := r.reloadLocked(trigger)
	span.SetAttributes(attribute.String("vigil.config.hash", r.applied),
		attribute.StringSlice("vigil.config.instances.added", rep.Added), attribute.StringSlice("vigil.config.instances.removed", rep.Removed),
		attribute.StringSlice("vigil.config.instances.restarted", rep.Restarted), attribute.StringSlice("vigil.config.instances.updated", rep.Updated),
		attribute.StringSlice("vigil.config.virtual_servers.changed", rep.VirtualServers.Changed))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return rep, err
}

func (r *reloader) reloadLocked(trigger string) (node.ReloadReport, error) {
	start := time.Now()
	// A file that did not change is not parsed again (configuration
	// management often sends HUP on every run; parsing 10,000 real servers
	// takes a while). The environment cannot have changed either.
	data, err := config.ReadFile(r.path) // bounded: config.MaxFileSize
	if err == nil {
		sum := sha256.Sum256(data)
		if h := hex.EncodeToString(sum[:]); h == r.applied {
			r.metrics.Reloaded(trigger, "success", time.Since(start))
			r.log.Info("configuration unchanged; nothing to do", "trigger", trigger, "config_hash", shortHash(h))
			return r.n.Unchanged(), nil
		}
	}
	// Parsing a large file allocates several times its live size; with
	// the daemon's GC setting (see runDaemon) the collector would run
	// through the old config and tables again and again while it does:
	// about half the time of reloading 1,000 virtual servers x 10 real
	// servers. Give it room until the reload is done.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(reloadGCPercent))
	}
	var cfg *config.Config
	if err != nil {
		err = fmt.Errorf("config: %w", err) // as config.Load words it
	} else {
		cfg, err = r.loader.ParseFile(data, r.path) // the bytes just hashed: read once
		if err == nil {
			// A node following the fleet runs the applied fleet version
			// with this file's local settings, never the file's own
			// older vrrp: and lb:.
			cfg, _, err = config.FleetEffective(cfg, data)
		}
	}
	parsed := time.Since(start)
	if err != nil {
		r.metrics.Reloaded(trigger, "rejected", time.Since(start))
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			var details []string
			for _, fe := range ve.Errors {
				details = append(details, fe.Error())
				r.log.Error("configuration reload rejected", "trigger", trigger, "problem", fe.Error())
			}
			return node.ReloadReport{}, &api.Error{Status: 422, Code: "invalid_config",
				Message: "the configuration is invalid; nothing was applied", Details: details}
		}
		r.log.Error("configuration reload failed", "trigger", trigger, "err", err)
		return node.ReloadReport{}, &api.Error{Status: 422, Code: "unreadable_config", Message: err.Error()}
	}
	for _, w := range cfg.Warnings {
		r.log.Warn("configuration warning", "detail", w)
	}
	if cfg.Empty() && !cfg.Node.AllowEmpty {
		// An emptied or truncated file would stop every instance and
		// remove every VIP and service (issue 11 item 4).
		r.metrics.Reloaded(trigger, "rejected", time.Since(start))
		r.log.Error("configuration reload refused: the file has no VRRP instance and no virtual server; nothing was applied",
			"trigger", trigger, "hint", "write node: {allow_empty: true} if this node is meant to run nothing")
		return node.ReloadReport{}, &api.Error{Status: 422, Code: "empty_config",
			Message: "the configuration has no VRRP instance and no virtual server (empty or truncated file?); nothing was applied",
			Details: []string{"set node.allow_empty: true to run this node with nothing"}}
	}
	rep, err := r.n.Reload(cfg)
	if err != nil {
		// Nothing of the file was applied (node.Reload is all or
		// nothing); the same file is tried again at the next reload.
		r.applied = ""
		r.metrics.Reloaded(trigger, "failure", time.Since(start))
		r.log.Error("configuration reload failed; the running configuration is unchanged", "trigger", trigger, "err", err)
		return rep, &api.Error{Status: 422, Code: "apply_failed",
			Message: "the configuration could not be applied; the running configuration is unchanged", Details: []string{err.Error()}}
	}
	sum := sha256.Sum256(data)
	r.applied = hex.EncodeToString(sum[:]) // the file's: what the next reload compares
	r.metrics.Reloaded(trigger, "success", time.Since(start))
	r.metrics.SetHash(cfg.Hash)
	r.log.Info("configuration reloaded", "trigger", trigger, "config_hash", shortHash(cfg.Hash),
		"added", strings.Join(rep.Added, ","), "removed", strings.Join(rep.Removed, ","),
		"restarted", strings.Join(rep.Restarted, ","), "updated", strings.Join(rep.Updated, ","),
		"unchanged", len(rep.Unchanged),
		"virtual_servers_added", strings.Join(rep.VirtualServers.Added, ","),
		"virtual_servers_removed", strings.Join(rep.VirtualServers.Removed, ","),
		"virtual_servers_changed", strings.Join(rep.VirtualServers.Changed, ","),
		"virtual_servers_reused", r.loader.Reused(),
		"parse", parsed.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// watchHUP reloads on SIGHUP until ctx ends.
func (r *reloader) watchHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload("sighup")
			}
		}
	}()
}

// handler is the admin API's reload route.
func (r *reloader) handler(context.Context) (any, error) {
	rep, err := r.reload("api")
	if err != nil {
		return nil, err
	}
	return rep, nil
}
