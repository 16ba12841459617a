package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/config"
	"vigil/node"
	"vigil/node/api"
	"vigil/test/netlab"
	"vigil/test/peer"
)

// keygen makes a signing key in the lab directory with vigil config keygen; it returns the
// private key's path (the public key is PATH.pub).
func (l *lab) keygen(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(l.lab.Dir(), name)
	if out, err := l.run("config", "keygen", "--out", path); err != nil {
		t.Fatalf("keygen: %v: %s", err, out)
	}
	return path
}

// sign signs the document at path with key (vigil config sign; PATH.sig, or out).
func (l *lab) sign(t *testing.T, key, path string, out ...string) {
	t.Helper()
	if b, err := l.run(append([]string{"config", "sign", "--key", key, path}, out...)...); err != nil {
		t.Fatalf("sign: %v: %s", err, b)
	}
}

// run runs a vigil command that needs no daemon.
func (l *lab) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, l.bin, args...).CombinedOutput()
}

// postPush posts a push to via's admin socket directly (the CLI would refuse a signature of
// another document itself): the status and the API error.
func (l *lab) postPush(t *testing.T, via string, doc []byte, sig string) (int, api.Error) {
	t.Helper()
	sock := peer.VigilAdminSocket(l.lab.Node(via))
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	body, _ := json.Marshal(api.PushRequest{Document: string(doc), Signature: sig, PushedBy: "test"})
	resp, err := c.Post("http://vigil/v1/config/push", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

// TestFleetSignedPush (issue 14: "signed push accepted, forged and unsigned refused with trust
// keys set"): three nodes trust one key (n1, n2 in trusted_keys, n3 by trusted_keys_file). A
// signed push is applied everywhere; the node taking a push refuses an unsigned one, one signed
// by another key and a signature of another document, each with its reason, and no version is
// used up. Then n1 runs without trusted keys and takes an unsigned push: it applies it, n2 and
// n3 refuse it (counted), and --wait names them. A rollback re-pushes version 1 with its
// stored signature, which every node applies.
func TestFleetSignedPush(t *testing.T) {
	l := newLab(t, 3)
	l.follow = true
	key, other := l.keygen(t, "signing.key"), l.keygen(t, "other-signing.key")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^` + config.PublicKeyPrefix + `\S+$`).Find(pub)
	trust := fmt.Sprintf(", trusted_keys: [%s]", line)
	l.fleetKeys = map[string]string{"n1": trust, "n2": trust, "n3": ", trusted_keys_file: " + key + ".pub"}
	local := []peer.Instance{vr(100)}
	for _, n := range []string{"n1", "n2", "n3"} {
		l.start(n, local, "test", "")
	}
	all := map[string]string{"n1": "alive", "n2": "alive", "n3": "alive"}
	l.waitMembers([]string{"n1", "n2", "n3"}, all, 30*time.Second)

	// A signed push: FILE.sig goes along and every node applies it.
	v1 := l.docFile(t, fleetDoc("eth0"))
	l.sign(t, key, v1)
	out, code := l.pushFile(t, "n2", v1)
	t.Logf("signed push:\n%s", out)
	if code != 0 || strings.Count(out, "applied version 1") != 3 || !strings.Contains(out, "signed by key") {
		t.Fatalf("signed push: exit %d:\n%s", code, out)
	}

	// Refused where it is taken: unsigned, another key (through the CLI), a signature of another
	// document (straight to the API: the CLI refuses it before).
	v2doc := strings.Replace(fleetDoc("eth0"), "priority: 200", "priority: 210", 1)
	unsigned := l.docFile(t, v2doc)
	out, code = l.pushFile(t, "n2", unsigned)
	t.Logf("unsigned push:\n%s", out)
	if code == 0 || !strings.Contains(out, "is not signed") || !strings.Contains(out, "reason: unsigned") {
		t.Errorf("unsigned push: exit %d:\n%s", code, out)
	}
	byOther := l.docFile(t, v2doc)
	l.sign(t, other, byOther)
	out, code = l.pushFile(t, "n2", byOther)
	t.Logf("push signed by another key:\n%s", out)
	if code == 0 || !strings.Contains(out, "does not trust") || !strings.Contains(out, "reason: untrusted_key") {
		t.Errorf("push signed by another key: exit %d:\n%s", code, out)
	}
	sig1, err := config.ReadSignature(v1 + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	status, e := l.postPush(t, "n2", []byte(v2doc), sig1)
	if status != 422 || e.Code != api.CodeSignature || fmt.Sprint(e.Details) != "[reason: bad_signature]" {
		t.Errorf("the signature of another document: %d %+v", status, e)
	}
	if out, code = l.pushFile(t, "n2", unsigned, "--signature", v1+".sig"); code == 0 || !strings.Contains(out, "another version of") {
		t.Errorf("the CLI with the signature of another document: exit %d:\n%s", code, out)
	}

	// n1 without trusted keys takes an unsigned push (version 2: the refusals used none) and
	// applies it; n2 and n3 keep version 1: each refuses it, or, when the other refused first, is
	// held back by the stopped rollout (--order all: neither waits for the other's turn).
	if err := l.procs["n1"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.fleetKeys["n1"] = ""
	l.start("n1", local, "test", "")
	l.waitMembers([]string{"n1", "n2", "n3"}, all, 30*time.Second)
	out, code = l.pushFile(t, "n1", unsigned, "--order", "all")
	t.Logf("unsigned push through n1 (no trusted keys):\n%s", out)
	refused := map[string]bool{}
	for _, n := range []string{"n2", "n3"} {
		switch {
		case strings.Contains(out, n+": FAILED version 2 (runs 1): fleet v2 refused: the document is not signed"):
			refused[n] = true
		case strings.Contains(out, n+": held back, the rollout stopped (runs 1)"):
		default:
			t.Errorf("%s neither refused version 2 nor was held back", n)
		}
	}
	if code == 0 || !strings.Contains(out, "n1: applied version 2") || len(refused) == 0 {
		t.Fatalf("unsigned push through n1: exit %d, refused by %v:\n%s", code, refused, out)
	}
	ms, err := l.members("n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n2", "n3"} {
		i := slices.IndexFunc(ms, func(m node.MemberStatus) bool { return m.Name == n })
		if i < 0 || ms[i].ConfigVersion != 1 || refused[n] != strings.Contains(ms[i].ConfigError, "fleet v2 refused: the document is not signed") {
			t.Errorf("%s as n1 sees it (refused: %v): %+v", n, refused[n], ms)
		}
	}
	if st, err := l.status("n3"); err != nil || st.Instances[0].EffectivePriority != 100 {
		t.Errorf("n3 does not run version 1: %+v %v", st, err)
	}
	// n2 counted the unsigned push it took itself; each follower that refused version 2 counts it.
	count := func(n string, base int) string {
		if refused[n] {
			base++
		}
		return fmt.Sprintf(`reason="unsigned"} %d`, base)
	}
	wantMetric := map[string][]string{
		"n2": {count("n2", 1), `reason="untrusted_key"} 1`, `reason="bad_signature"} 1`},
		"n3": {count("n3", 0), `reason="untrusted_key"} 0`},
		"n1": {`reason="unsigned"} 0`},
	}
	for n, want := range wantMetric {
		if err := netlab.Poll(5*time.Second, 200*time.Millisecond, func() (bool, error) {
			m, err := l.metrics(n)
			return err == nil && containsAll(m, "vigil_fleet_config_rejected_total{", want), nil
		}); err != nil {
			m, _ := l.metrics(n)
			t.Errorf("%s: vigil_fleet_config_rejected_total, want %v:\n%s", n, want, grepLines(m, "vigil_fleet_config_rejected_total"))
		}
	}

	// Rollback to version 1 through n2: pushed again with its signature, applied by all.
	out2, err := l.cli("n2", "config", "rollback", "1", "--wait", "--timeout", "20s")
	t.Logf("rollback 1:\n%s", out2)
	if err != nil || strings.Count(string(out2), "applied version 3") != 3 {
		t.Fatalf("rollback: %v\n%s", err, out2)
	}
}

// containsAll reports whether text has prefix+w for every w of want.
func containsAll(text, prefix string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(text, prefix+w) {
			return false
		}
	}
	return true
}
