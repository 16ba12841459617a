package netlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the node's namespace. Sockets fn
// creates belong to that namespace and keep it after fn returns; fn must not
// start goroutines that expect to run there.
func (n *Node) Do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked (and is discarded when this goroutine
		// ends) unless it is back in its own namespace, so no other goroutine
		// ever runs in the wrong one.
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("netlab: current namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.NS)
		if err != nil {
			done <- fmt.Errorf("netlab: namespace %s: %w", n.NS, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- fmt.Errorf("netlab: enter %s: %w", n.NS, err)
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

// Dial opens a connection from inside the node's namespace.
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ListenPacket opens a packet socket (e.g. "ip4:112") inside the node's
// namespace.
func (n *Node) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// HTTPGet fetches url from inside the node's namespace (e.g. vigil's
// /metrics on 127.0.0.1).
func (n *Node) HTTPGet(ctx context.Context, url string) ([]byte, error) {
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: n.Dial, DisableKeepAlives: true},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("netlab: GET %s in %s: %w", url, n.NS, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("netlab: GET %s in %s: %w", url, n.NS, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("netlab: GET %s in %s: %s", url, n.NS, resp.Status)
	}
	return body, nil
}
