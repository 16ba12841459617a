package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// AdminClient is an HTTP client of a vigil admin socket (a lab's nodes share the host's file
// system, so a test reaches every daemon without entering its namespace).
func AdminClient(socket string, timeout time.Duration) *http.Client {
	var d net.Dialer
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", socket) },
	}}
}

// AdminJSON decodes the JSON answer to GET path; another status than 200 is an error with the
// answer's text.
func AdminJSON(c *http.Client, path string, v any) error {
	resp, err := c.Get("http://vigil" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// AliveMembers is how many members the daemon behind c lists alive (GET /v1/members).
func AliveMembers(c *http.Client) (int, error) {
	var ms []struct {
		State string `json:"state"`
	}
	if err := AdminJSON(c, "/v1/members", &ms); err != nil {
		return 0, err
	}
	alive := 0
	for _, m := range ms {
		if m.State == "alive" {
			alive++
		}
	}
	return alive, nil
}
