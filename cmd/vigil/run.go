package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"vigil/config"
	"vigil/internal/buildinfo"
	"vigil/internal/caps"
	"vigil/node"
	"vigil/node/api"
	"vigil/telemetry"
)

const defaultConfigPath = "/etc/vigil/vigil.yaml"

func newRunCmd() *cobra.Command {
	var path, level, format string
	var adminSocket string // admin API (vigil status)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the vigil daemon in the foreground",
		Long: `Run the vigil daemon in the foreground.

Signals: SIGTERM and SIGINT stop gracefully (masters send a priority-0 advert
and remove their virtual addresses); SIGHUP reloads the configuration file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGHUP's default action ends the process; until the reloader
			// watches it, a HUP is dropped: the file is read after this.
			signal.Ignore(syscall.SIGHUP)
			// The loader remembers the file's virtual servers, so a reload
			// that changes a few of many parses only those.
			loader := &config.Loader{}
			if os.Getenv("GOGC") == "" {
				// Parsing a large file allocates many times its size: give
				// the collector room from the start (runDaemon explains).
				debug.SetGCPercent(reloadGCPercent)
			}
			cfg, err := loader.Load(path)
			if err != nil {
				return &exitError{code: 1, msg: formatConfigError(path, err)}
			}
			if level == "" {
				level = cfg.Telemetry.LogLevel
			}
			if format == "" {
				format = cfg.Telemetry.LogFormat
			}
			log, err := telemetry.NewLogger(os.Stderr, level, format)
			if err != nil {
				return &exitError{code: 2, msg: "vigil run: " + err.Error()}
			}
			telemetry.RouteLogrus(log)
			for _, w := range cfg.Warnings {
				log.Warn("configuration warning", "detail", w)
			}
			if cfg.Fleet.Follows() {
				// The applied fleet version, composed with this file's
				// local settings: a restart never goes back to the file's
				// own older vrrp: and lb:.
				if data, err := config.ReadFile(path); err == nil {
					eff, v, err := config.FleetEffective(cfg, data)
					switch {
					case err != nil:
						log.Error("the applied fleet configuration cannot be used; running the local file until the next push",
							"version", v.Version, "err", err)
					case v.Version > 0:
						log.Info("running the applied fleet configuration", "version", v.Version, "hash", shortHash(v.Hash))
						cfg = eff
					}
				}
			}
			for _, w := range caps.Missing(cfg) {
				log.Warn("capability missing", "detail", w.String())
			}
			return runDaemon(cmd.Context(), loader, cfg, log, adminSocket)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfigPath, "configuration file (YAML)")
	cmd.Flags().StringVar(&level, "log-level", "", "log level: debug, info, warn, error (default from config, else info)")
	cmd.Flags().StringVar(&format, "log-format", "", "log format: text or json (default from config, else text)")
	cmd.Flags().StringVar(&adminSocket, "admin-socket", api.DefaultSocket, `admin API unix socket, used by "vigil status" ("" disables)`)
	addAdminFlags(cmd)
	return cmd
}

func runDaemon(parent context.Context, loader *config.Loader, cfg *config.Config, log *slog.Logger, adminSocket string) error {
	if parent == nil {
		parent = context.Background()
	}
	// The live heap is a few MB; Go's default GOGC=100 lets idle garbage
	// from a burst of transitions double it and keeps it resident. Half the
	// headroom measured 27.7 → 19.7 MB RSS for a master of 200 instances at
	// no visible CPU cost; with gossip on, a quarter (steadyGCPercent) keeps
	// such a node under issue 13's 30 MB. An operator's GOGC still wins.
	//
	// Until the start's work is done, though (a large IPVS table is
	// thousands of netlink requests), the collector gets room, as during a
	// reload: with 50 it would go through the config and tables again and
	// again while they are built.
	tuneGC := os.Getenv("GOGC") == ""
	if tuneGC {
		debug.SetGCPercent(reloadGCPercent)
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	bi := buildinfo.Get()
	log.Info("starting vigil", "version", bi.Version, "revision", bi.Revision, "config", cfg.Path,
		"config_hash", shortHash(cfg.Hash), "node", cfg.Node.Name)
	reg := telemetry.NewRegistry()
	tracing, err := telemetry.NewTracing(cfg.Telemetry.Tracing, cfg.Node.Name, bi.Version, os.Getenv, reg.Reg)
	if err != nil {
		return err
	}
	reg.Tracer = tracing.Tracer
	if tracing.Exporter != "none" {
		log.Info("tracing", "exporter", tracing.Exporter)
	}
	defer func() {
		// After VRRP has stopped: the VIPs' release is in the trace.
		if err := tracing.Shutdown(5 * time.Second); err != nil {
			log.Warn("spans not flushed at stop", "err", err)
		}
	}()
	// Admin API: bound before node.New (refuses if another vigil answers on
	// the socket), served once the node exists, removed on the way out.
	admin, err := listenAdmin(adminSocket, log)
	if err != nil {
		return err
	}
	defer admin.close()
	// Every listener is bound before the kernel is touched (node.New
	// creates virtual MAC interfaces, nftables tables, sets sysctls): a
	// port already taken must fail the start with nothing to undo (issue
	// 11 item 6).
	var srv *telemetry.Server
	if cfg.Telemetry.Listen != "" {
		if cfg.Telemetry.Pprof && runtime.MemProfileRate == 0 {
			runtime.MemProfileRate = defaultMemProfileRate
		}
		srv, err = telemetry.Listen(cfg.Telemetry.Listen, reg, log, cfg.Telemetry.Pprof)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	// memberlist binds the gossip port inside node.New, after the VRRP
	// side's kernel changes, and starts serving as it binds: a probe here
	// fails a port that is already taken before anything is changed (a
	// port taken in the moment between is still undone, not avoided).
	if cfg.Gossip != nil {
		if err := probeGossipPort(cfg.Gossip.Bind); err != nil {
			return err
		}
	}
	n, err := node.New(cfg, node.Options{Logger: log, Metrics: reg})
	if err != nil {
		return fmt.Errorf("starting node: %w", err)
	}
	rl := &reloader{path: cfg.Path, loader: loader, n: n, log: log, metrics: reg.NewConfigMetrics(cfg.Hash), applied: cfg.Hash, tracer: reg.Tracer}
	rl.watchHUP(ctx)
	admin.serve(n, rl.handler)
	if srv != nil {
		go func() {
			if err := srv.Serve(ctx); err != nil {
				log.Error("telemetry server stopped", "err", err)
			}
		}()
		srv.SetReady(true)
		log.Info("serving metrics", "address", srv.Addr().String())
	}
	sdNotify("READY=1")
	startWatchdog(ctx, log, n.Alive)
	if tuneGC {
		go func() {
			select {
			case <-n.LBSettled():
			case <-ctx.Done():
			case <-time.After(2 * time.Minute): // a kernel that keeps refusing
			}
			debug.SetGCPercent(steadyGCPercent)
			debug.FreeOSMemory() // once: give back the start's garbage
		}()
	}
	err = n.Run(ctx)
	sdNotify("STOPPING=1")
	return err
}

// probeGossipPort binds the gossip port's UDP and TCP sockets and lets
// them go (memberlist needs both); port 0 (memberlist picks) has nothing
// to probe.
func probeGossipPort(bind netip.AddrPort) error {
	if bind.Port() == 0 {
		return nil
	}
	addr := bind.String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gossip port: %w", err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("gossip port: %w", err)
	}
	pc.Close()
	return nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// sdNotify tells systemd (Type=notify) about readiness; a no-op elsewhere.
func sdNotify(state string) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}

func formatConfigError(path string, err error) string {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return ve.Error() // names the file and lists every problem
	}
	return fmt.Sprintf("%s: %v", path, err)
}
