package netlab

import (
	"strings"
	"testing"
)

// fakeTB records what Require does.
type fakeTB struct {
	skipped, fatal bool
	msg            string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = true
	f.msg = toString(args)
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = true; f.msg = format }
func (f *fakeTB) Errorf(format string, args ...any) {}
func (f *fakeTB) Logf(format string, args ...any)   {}
func (f *fakeTB) Cleanup(func())                    {}
func (f *fakeTB) Failed() bool                      { return f.fatal }

func toString(args []any) string {
	var b strings.Builder
	for _, a := range args {
		if s, ok := a.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

func TestRequireSkipsWithoutEnv(t *testing.T) {
	t.Setenv(EnvNetNS, "")
	f := &fakeTB{}
	Require(f)
	if !f.skipped || f.fatal || !strings.Contains(f.msg, "VIGIL_NETNS=1") {
		t.Errorf("Require without %s: skipped %v fatal %v msg %q", EnvNetNS, f.skipped, f.fatal, f.msg)
	}
	var _ TB = t // a *testing.T is a TB
	var _ TB = (testing.TB)(nil)
}
