// Package nsdo runs a function on an OS thread switched into another
// network namespace: sockets and /proc/sys/net files it opens belong to that
// namespace.
package nsdo

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Do runs fn on a locked OS thread in target and waits for it. The thread
// goes back to its own namespace afterwards; if it cannot, it stays locked
// and the runtime discards it when its goroutine ends, so no other goroutine
// ever runs in the wrong namespace. fn must not start goroutines that
// expect to run in target.
//
// When the thread already is in target (same namespace inode), fn runs
// there without setns(2): setns needs CAP_SYS_ADMIN even into one's own
// namespace, and the daemon (systemd unit) runs without it.
func Do(target netns.NsHandle, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("open the thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		same, err := sameNS(orig, target)
		if err != nil {
			done <- err
			return
		}
		if same {
			ferr := fn()
			runtime.UnlockOSThread()
			done <- ferr
			return
		}
		if err := netns.Set(target); err != nil {
			done <- fmt.Errorf("enter network namespace %s: %w", target, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- ferr
	}()
	return <-done
}

// sameNS compares two namespace handles by device and inode. Unlike
// netns.NsHandle.Equal it reports a handle it cannot stat instead of
// calling it different.
func sameNS(a, b netns.NsHandle) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a), &sa); err != nil {
		return false, fmt.Errorf("stat network namespace %s: %w", a, err)
	}
	if err := unix.Fstat(int(b), &sb); err != nil {
		return false, fmt.Errorf("stat network namespace %s: %w", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
