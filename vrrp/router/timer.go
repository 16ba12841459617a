package router

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// deadlineTimer wakes the event loop at the next VRRP deadline. Go's
// runtime timers sleep in epoll with millisecond timeouts and fire 0.1–4 ms
// late on an idle host; that lateness adds straight onto every takeover. A
// timerfd is an hrtimer whose expiry makes the fd readable, so the netpoller
// wakes on the event itself, typically within ~100 µs.
type deadlineTimer struct {
	fd int
	f  *os.File
	C  chan struct{}
}

func newDeadlineTimer() (*deadlineTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	t := &deadlineTimer{fd: fd, f: os.NewFile(uintptr(fd), "vrrp-timerfd"), C: make(chan struct{}, 1)}
	go t.read()
	return t, nil
}

func (t *deadlineTimer) read() {
	buf := make([]byte, 8)
	for {
		if _, err := t.f.Read(buf); err != nil {
			return // closed
		}
		select {
		case t.C <- struct{}{}:
		default:
		}
	}
}

// Set arms the timer for at (zero disarms). A deadline in the past fires at
// once. A wake-up from an earlier setting may still arrive; the loop treats
// wake-ups as hints and checks the deadlines itself.
func (t *deadlineTimer) Set(at time.Time) error {
	var spec unix.ItimerSpec
	if !at.IsZero() {
		d := time.Until(at)
		if d < time.Microsecond {
			d = time.Microsecond // 0 would disarm
		}
		spec.Value = unix.NsecToTimespec(int64(d))
	}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

func (t *deadlineTimer) Close() error { return t.f.Close() }
