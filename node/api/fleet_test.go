package api

import (
	"cmp"
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

func (f *fakeFleet) PushConfig(_ context.Context, doc []byte, sig, by string, ifVersion uint64, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	if !f.on {
		return config.FleetVersion{}, node.ErrNoFleet
	}
	// As the node does: the plan against the document's nodes.
	if err := plan.Validate([]string{"lb1", "lb2"}); err != nil {
		return config.FleetVersion{}, err
	}
	f.plans = append(f.plans, plan)
	switch string(doc) {
	case "unsigned":
		return config.FleetVersion{}, fmt.Errorf("%w: %w: this node trusts only documents signed by 0123456789ab", node.ErrPushSignature, config.ErrUnsigned)
	case "signed":
		if sig != "vigil-ed25519-sig:xyz" {
			return config.FleetVersion{}, fmt.Errorf("the signature did not reach the fleet: %q", sig)
		}
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

func (f *fakeFleet) RollbackConfig(_ context.Context, v uint64, by string, plan gossip.RolloutPlan) (config.FleetVersion, error) {
	f.plans = append(f.plans, plan)
	if v == 9 {
		return config.FleetVersion{}, fmt.Errorf("%w: version 9 is not in this node's history", node.ErrPushInvalid)
	}
	return config.FleetVersion{Version: 2, Hash: "ab", Origin: "lb1"}, nil
}

func (f *fakeFleet) Failover(_ context.Context, instance, to string, force bool) (node.HandoffResult, error) {
	switch {
	case instance == "gone":
		return node.HandoffResult{}, fmt.Errorf("%w: %q", node.ErrNoInstance, instance)
	case to == "lb3" && !force:
		return node.HandoffResult{}, fmt.Errorf("%w: lb3 would not keep web:\nlb1 (priority 200, preempt) would take mastership back", node.ErrHandoffRefused)
	}
	return node.HandoffResult{Instance: instance, From: "lb1", To: cmp.Or(to, "lb2")}, nil
}

func (f *fakeFleet) Drain(_ context.Context, target string, drain, force bool) (node.DrainResult, error) {
	if !f.on {
		return node.DrainResult{}, node.ErrNoFleet
	}
	f.ops = append(f.ops, fmt.Sprintf("drain %s %v %v", target, drain, force))
	return node.DrainResult{Node: cmp.Or(target, "lb1"), Drained: drain, Changed: true}, nil
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
	// Issue 14: a node with trusted keys refuses an unsigned push with 422 naming the reason;
	// the signature travels to the fleet.
	code, body = post(t, c, "/v1/config/push", `{"document": "unsigned"}`)
	if e := decodeError(t, body); code != 422 || e.Code != CodeSignature || fmt.Sprint(e.Details) != "[reason: unsigned]" ||
		!strings.Contains(e.Message, "not signed") {
		t.Errorf("unsigned push: %d %+v", code, e)
	}
	if code, body := post(t, c, "/v1/config/push", `{"document": "signed", "signature": "vigil-ed25519-sig:xyz"}`); code != 200 {
		t.Errorf("signed push: %d %s", code, body)
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

	// Handoffs: the result; a refusal is 409 refused with one detail per problem; an unknown
	// instance 404; no instance 400. Drains reach the fleet with their target.
	if code, body := post(t, c, "/v1/vrrp/failover", `{"instance": "web"}`); code != 200 || !strings.Contains(string(body), `"to": "lb2"`) {
		t.Fatalf("failover: %d %s", code, body)
	}
	code, body = post(t, c, "/v1/vrrp/failover", `{"instance": "web", "to": "lb3"}`)
	if e := decodeError(t, body); code != 409 || e.Code != CodeRefused || len(e.Details) != 1 || !strings.Contains(e.Details[0], "preempt") {
		t.Errorf("refused failover: %d %+v", code, e)
	}
	if code, body := post(t, c, "/v1/vrrp/failover", `{"instance": "web", "to": "lb3", "force": true}`); code != 200 {
		t.Errorf("forced failover: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/vrrp/failover", `{"instance": "gone"}`); decodeError(t, body).Code != CodeNotFound || code != 404 {
		t.Errorf("failover of an unknown instance: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/vrrp/failover", `{}`); code != 400 {
		t.Errorf("failover without an instance: %d %s", code, body)
	}
	if code, body := post(t, c, "/v1/drain", `{"node": "lb2", "drain": true}`); code != 200 || !strings.Contains(string(body), `"node": "lb2"`) {
		t.Fatalf("drain: %d %s", code, body)
	}
	if last := f.ops[len(f.ops)-1]; last != "drain lb2 true false" {
		t.Errorf("the drain that reached the fleet: %s", last)
	}

	_, c2, _ := start(t, Handlers{Fleet: &fakeFleet{}})
	for _, path := range []string{"/v1/members", "/v1/fleet"} {
		code, _, body := do(t, c2, "GET", path)
		if e := decodeError(t, body); code != 409 || e.Code != CodeNoFleet {
			t.Errorf("%s without gossip: %d %+v", path, code, e)
		}
	}
	if code, body := post(t, c2, "/v1/drain", `{"drain": true}`); decodeError(t, body).Code != CodeNoFleet || code != 409 {
		t.Errorf("drain without gossip: %d %s", code, body)
	}
}
