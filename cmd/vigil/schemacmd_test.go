package main

import (
	"encoding/json"
	"os"
	"testing"
)

// vigil config schema prints the JSON Schema; --markdown the checked-in
// reference.
func TestConfigSchemaCmd(t *testing.T) {
	out, code, msg := run(t, "config", "schema")
	if code != 0 {
		t.Fatalf("code %d: %s", code, msg)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["properties"] == nil {
		t.Fatalf("not the schema: %.200s", out)
	}
	md, code, msg := run(t, "config", "schema", "--markdown")
	want, err := os.ReadFile("../../docs/config-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || md != string(want) {
		t.Fatalf("--markdown: code %d (%s), output differs from docs/config-reference.md", code, msg)
	}
	if _, code, _ := run(t, "config", "schema", "extra"); code != 2 {
		t.Fatalf("an argument: code %d, want 2", code)
	}
}
