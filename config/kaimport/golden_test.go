package kaimport_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/config"
	"vigil/config/kaimport"
	"vigil/internal/kaconf"
)

var update = flag.Bool("update", false, "rewrite the golden .yaml and .stderr files")

// The golden tests translate realistic keepalived configurations
// (testdata/*.conf; files they include live in testdata/*.d) and compare
// the document and the report with testdata/NAME.yaml and NAME.stderr.
// Every document must also pass vigil's own validation (config.Parse, what
// vigil config validate runs).
func TestGolden(t *testing.T) {
	confs, err := filepath.Glob("testdata/*.conf")
	if err != nil || len(confs) == 0 {
		t.Fatalf("no testdata/*.conf: %v", err)
	}
	for _, conf := range confs {
		name := strings.TrimSuffix(filepath.Base(conf), ".conf")
		t.Run(name, func(t *testing.T) {
			f, err := kaconf.Parse(conf, kaconf.Options{
				ConfigID: "lb1",
				Getenv:   func(string) string { return "" },
			})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			res, err := kaimport.Translate(f, kaimport.Options{})
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			var report bytes.Buffer
			if err := res.Report(&report); err != nil {
				t.Fatal(err)
			}
			golden(t, "testdata/"+name+".yaml", res.YAML)
			golden(t, "testdata/"+name+".stderr", report.Bytes())
			if _, err := config.Parse(res.YAML); err != nil {
				t.Errorf("the translated document does not pass vigil's validation:\n%v\n%s", err, res.YAML)
			}
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}
