package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// watchdogInterval reads what systemd asks for (WatchdogSec= of the unit):
// WATCHDOG_USEC, for this process when WATCHDOG_PID names it or is unset.
// It returns 0 when there is no watchdog.
func watchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // meant for another process (a wrapper that exec'd us would have the same pid)
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: want a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// startWatchdog keeps systemd's watchdog (WatchdogSec=) fed: every half
// interval it calls alive, and sends WATCHDOG=1 only when alive returned
// nil within a quarter of the interval. A daemon whose event loop is
// wedged stops the pings, and systemd kills it (SIGABRT: Go prints every
// goroutine's stack) and restarts it. Without a watchdog it does nothing.
// When ctx ends it sends one last ping and stops: the graceful stop then has
// a whole interval, longer than the unit's TimeoutStopSec.
//
// alive must honour its context; one that does not return is not called
// again until it does, and no ping is sent meanwhile.
func startWatchdog(ctx context.Context, log *slog.Logger, alive func(context.Context) error) {
	interval, err := watchdogInterval()
	if err != nil {
		log.Error("systemd watchdog: ignoring a bad setting; systemd will restart vigil when the watchdog expires", "err", err)
		return
	}
	if interval == 0 {
		return
	}
	period, bound := interval/2, interval/4
	log.Info("systemd watchdog enabled", "interval", interval, "ping_every", period, "liveness_bound", bound)
	go watchdogLoop(ctx, log, alive, period, bound)
}

// errStillRunning: the previous liveness check has not returned yet.
var errStillRunning = errors.New("the previous liveness check has not returned")

func watchdogLoop(ctx context.Context, log *slog.Logger, alive func(context.Context) error, period, bound time.Duration) {
	var running chan error // the check in flight, nil when none
	healthy := true
	check := func() error {
		if running == nil {
			running = make(chan error, 1)
			actx, cancel := context.WithTimeout(ctx, bound)
			go func(res chan<- error) {
				defer cancel()
				res <- alive(actx)
			}(running)
		}
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case err := <-running:
			running = nil
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				// The check gave up at its bound just before the timer
				// below would have: the same verdict, in the same words.
				return fmt.Errorf("no answer within %v: %w", bound, err)
			}
			return err
		case <-t.C:
			return fmt.Errorf("no answer within %v: %w", bound, errStillRunning)
		}
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for ctx.Err() == nil {
		err := check()
		switch {
		case ctx.Err() != nil:
		case err == nil:
			sdNotify("WATCHDOG=1")
			if !healthy {
				log.Info("systemd watchdog: the daemon answers again; pinging systemd")
			}
			healthy = true
		case healthy:
			// Once per episode: systemd logs the kill itself.
			log.Error("systemd watchdog: the daemon does not answer; not pinging systemd, which restarts vigil when the watchdog expires",
				"err", err, "watchdog", 2*period)
			healthy = false
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	sdNotify("WATCHDOG=1")
}
