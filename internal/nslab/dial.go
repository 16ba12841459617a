package nslab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/vishvananda/netns"

	"vigil/internal/nsdo"
)

// Do runs fn on an OS thread switched into the node's namespace. Sockets fn
// creates belong to that namespace and keep it after fn returns; fn must not
// start goroutines that expect to run there.
func (n *Node) Do(fn func() error) error {
	target, err := netns.GetFromName(n.NS)
	if err != nil {
		return fmt.Errorf("netlab: namespace %s: %w", n.NS, err)
	}
	defer target.Close()
	return nsdo.Do(target, fn)
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
