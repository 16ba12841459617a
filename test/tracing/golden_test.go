package tracing

import (
	"os"
	"path/filepath"
	"testing"
)

// testdata/traces.json is a real /api/traces answer of Jaeger v1.75.0 (captured from the namespace
// test's Jaeger with `-args -update`): one trace, a parent and a child span sent as OTLP JSON.
func TestParseTracesGolden(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "traces.json"))
	if err != nil {
		t.Fatal(err)
	}
	traces, err := ParseTraces(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 1 {
		t.Fatalf("got %d traces, want 1", len(traces))
	}
	checkHarnessTrace(t, traces[0])
}
