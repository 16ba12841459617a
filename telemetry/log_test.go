package telemetry

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestRouteLogrus: what moby/ipvs logs through logrus (its modprobe
// warning here) comes out as one structured record at the matching
// level, and nothing in logrus's own format.
func TestRouteLogrus(t *testing.T) {
	std := logrus.StandardLogger()
	out, hooks := std.Out, std.Hooks
	t.Cleanup(func() {
		std.SetOutput(out)
		std.ReplaceHooks(hooks)
	})
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	RouteLogrus(log)
	logrus.Warnf("Running modprobe ip_vs failed with message: `%s`, error: %v", "", "exit status 1")
	logrus.WithField("family", "IPVS").Error("Could not get ipvs family information from the kernel.")
	logrus.Debug("below the level: dropped by logrus")

	var recs []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("not a JSON record: %q (%v)", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %s", len(recs), buf.String())
	}
	want := []struct{ level, msg, field string }{
		{"WARN", "Running modprobe ip_vs failed with message: ``, error: exit status 1", ""},
		{"ERROR", "Could not get ipvs family information from the kernel.", "IPVS"},
	}
	for i, w := range want {
		r := recs[i]
		if r["level"] != w.level || r["msg"] != w.msg || r["library"] != "logrus" {
			t.Errorf("record %d: %v, want level %s, msg %q, library logrus", i, r, w.level, w.msg)
		}
		if w.field != "" && r["family"] != w.field {
			t.Errorf("record %d: family %v, want %s", i, r["family"], w.field)
		}
	}
}
