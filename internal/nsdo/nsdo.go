// Package nsdo runs a function on an OS thread switched into another
// network namespace: sockets and /proc/sys/net files it opens belong to that
// namespace.
package nsdo

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread in target and waits for it. The thread
// goes back to its own namespace afterwards; if it cannot, it stays locked
// and the runtime discards it when its goroutine ends, so no other goroutine
// ever runs in the wrong namespace. fn must not start goroutines that
// expect to run in target.
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
