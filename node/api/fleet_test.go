package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"vigil/config"
	"vigil/gossip"
	"vigil/node"
)

// fakeFleet answers the fleet endpoints as a node with (or without) a gossip section would.
type fakeFleet struct {
	on      bool
	members []node.MemberStatus
	ops     []string
	plans   []gossip.RolloutPlan
}

func (f *fakeFleet) Members() ([]node.MemberStatus, error) {
	if !f.on {
		return nil, node.ErrNoFleet
	}
	return f.members, nil
}

func (f *fakeFleet) FleetStatus() (node.FleetStatus, error) {
	if !f.on {
		return node.FleetStatus{}, node.ErrNoFleet
	}
	return node.FleetStatus{Node: "lb1"}, nil
}

func (f *fakeFleet) GossipKeys(_ context.Context, op, key string) ([]gossip.KeyResult, error) {
	if !f.on {
		return nil, node.ErrNoFleet
	}
	if op != "list" && key != "good" {
		return nil, fmt.Errorf("%w: a key is 32 bytes in base64", node.ErrBadKey)
	}
	f.ops = append(f.ops, op+" "+key)
	return []gossip.KeyResult{{Node: "lb1"}}, nil
}

func (f *fakeFleet) PushConfig(doc []byte, by string, ifVersion uint64, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	if !f.on {
		return config.FleetVersion{}, node.ErrNoFleet
	}
	// As the node does: the plan against the document's nodes.
	if err := plan.Validate([]string{"lb1", "lb2"}); err != nil {
		return config.FleetVersion{}, err
	}
	f.plans = append(f.plans, plan)
	switch string(doc) {
	case "bad":
		return config.FleetVersion{}, fmt.Errorf("%w: lb2: f.yaml[lb2]:3:5: vrrp.instances[0].vrid: 300 is out of range\nlb3: another", node.ErrPushInvalid)
	case "stale":
		return config.FleetVersion{}, fmt.Errorf("%w: expected version %d, the fleet is at 4", node.ErrPushConflict, ifVersion)
	}
	return config.FleetVersion{Version: 1, Hash: config.DocumentHash(doc), Origin: "lb1"}, nil
}

func (f *fakeFleet) ConfigHistory() ([]config.FleetEntry, error) {
	if !f.on {
		return nil, node.ErrNoFleet
	}
	return []config.FleetEntry{{FleetVersion: config.FleetVersion{Version: 1, Hash: "ab", Origin: "lb1"}, PushedBy: "ops"}}, nil
}

func (f *fakeFleet) RollbackConfig(v uint64, by string, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	f.plans = append(f.plans, plan)
	if v == 9 {
		return config.FleetVersion{}, fmt.Errorf("%w: version 9 is not in this node's history", node.ErrPushInvalid)
	}
	return config.FleetVersion{Version: 2, Hash: "ab", Origin: "lb1"}, nil
}

func post(t *testing.T, c *http.Client, path, body string) (int, []byte) {
	t.Helper()
	resp, err := c.Post("http://vigil"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The fleet endpoints: members and the fleet view as JSON; key operations checked before they
// reach the fleet (unknown op, unreadable body, bad key: 400); a node without gossip answers
// 409 no_fleet, not 500.
func TestFleetEndpoints(t *testing.T) {
	ms := []node.MemberStatus{{Name: "lb1", Address: "192.0.2.11:7946", State: "alive", Instances: map[string]string{"web": "master"}}}
	f := &fakeFleet{on: true, members: ms}
	_, c, _ := start(t, Handlers{Fleet: f})
	code, _, body := do(t, c, "GET", "/v1/members")
	var got []node.MemberStatus
	if code != 200 || json.Unmarshal(body, &got) != nil || !reflect.DeepEqual(got, ms) {
		t.Fatalf("members: %d %s", code, body)
	}
	for _, key := range []string{`"name"`, `"address"`, `"state"`, `"config_version"`, `"config_hash"`, `"build"`, `"instances"`, `"drained"`, `"summary_age_seconds"`} {
		if !strings.Contains(string(body), key) {
			t.Errorf("members JSON lacks the stable key %s: %s", key, body)
		}
	}
	if code, _, body := do(t, c, "GET", "/v1/fleet"); code != 200 || !strings.Contains(string(body), `"virtual_routers"`) {
		t.Fatalf("fleet: %d %s", code, body)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"op": "rotate"}`, "unknown key operation"},
		{`{"op": `, "unreadable request"},
		{`{"op": "install", "key": "bad"}`, "not a gossip key"},
	} {
		code, body := post(t, c, "/v1/gossip/keys", bad.body)
		if e := decodeError(t, body); code != 400 || e.Code != CodeBadRequest || !strings.Contains(e.Message, bad.want) {
			t.Errorf("%s: %d %+v", bad.body, code, e)
		}
	}
	if code, body := post(t, c, "/v1/gossip/keys", `{"op": "install", "key": "good"}`); code != 200 || !strings.Contains(string(body), "lb1") {
		t.Fatalf("install: %d %s", code, body)
	}
	if fmt.Sprint(f.ops) != "[install good]" {
		t.Errorf("operations that reached the fleet: %v", f.ops)
	}

	// Pushes: the version on success; an invalid document is 422 with one detail per problem; a
	// stale --if-version is 409.
	if code, body := post(t, c, "/v1/config/push", `{"document": "vrrp: {}", "pushed_by": "ops"}`); code != 200 || !strings.Contains(string(body), `"version": 1`) {
		t.Fatalf("push: %d %s", code, body)
	}
	code, body = post(t, c, "/v1/config/push", `{"document": "bad"}`)
	if e := decodeError(t, body); code != 422 || e.Code != CodeInvalid || len(e.Details) != 2 || !strings.Contains(e.Details[0], "vrid") {
		t.Errorf("invalid push: %d %+v", code, e)
	}
	code, body = post(t, c, "/v1/config/push", `{"document": "stale", "if_version": 3}`)
	if e := decodeError(t, body); code != 409 || e.Code != CodeConflict {
		t.Errorf("stale push: %d %+v", code, e)
	}

	// The rollout plan (issue 14: --canary, --canary-hold, --order): a bad one is 400 with a clear
	// message, a good one reaches the fleet as given.
	for _, bad := range []struct{ body, want string }{
		{`{"document": "x", "order": "sideways"}`, `order "sideways": want backups-first or all`},
		{`{"document": "x", "canary": ["lb9"]}`, `canary "lb9": the document names no such node`},
		{`{"document": "x", "canary_hold": "soon"}`, `canary_hold "soon"`},
	} {
		code, body := post(t, c, "/v1/config/push", bad.body)
		if e := decodeError(t, body); code != 400 || e.Code != CodeBadRequest || !strings.Contains(e.Message, bad.want) {
			t.Errorf("%s: %d %+v", bad.body, code, e)
		}
	}
	f.plans = nil
	if code, body := post(t, c, "/v1/config/push", `{"document": "x", "order": "all", "canary": ["lb2"], "canary_hold": "3s"}`); code != 200 {
		t.Fatalf("push with a plan: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/config/rollback", `{"version": 1, "canary": ["lb1"]}`); code != 200 {
		t.Fatalf("rollback with a plan: %d %s", code, body)
	}
	if got := fmt.Sprintf("%+v", f.plans); got != "[{Order:all Canary:[lb2] CanaryHold:3s} {Order: Canary:[lb1] CanaryHold:0s}]" {
		t.Errorf("plans that reached the fleet: %s", got)
	}

	if code, _, body := do(t, c, "GET", "/v1/config/history"); code != 200 || !strings.Contains(string(body), `"pushed_by": "ops"`) {
		t.Fatalf("history: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/config/rollback", `{"version": 1}`); code != 200 || !strings.Contains(string(body), `"version": 2`) {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/config/rollback", `{"version": 9}`); code != 422 {
		t.Fatalf("rollback to an unknown version: %d %s", code, body)
	}

	_, c2, _ := start(t, Handlers{Fleet: &fakeFleet{}})
	for _, path := range []string{"/v1/members", "/v1/fleet"} {
		code, _, body := do(t, c2, "GET", path)
		if e := decodeError(t, body); code != 409 || e.Code != CodeNoFleet {
			t.Errorf("%s without gossip: %d %+v", path, code, e)
		}
	}
}
