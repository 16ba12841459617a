package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The page date is --date, else SOURCE_DATE_EPOCH (reproducible-builds.org: same commit, same
// pages), else now; bad values are errors naming them, never a silent "today".
func TestManHeader(t *testing.T) {
	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		date, epoch string
		want        string // the page footer's date, cobra's "Jan 2006"
		wantErr     string
	}{
		{"", "", "Dec 2026", ""},
		{"", "1700000000", "Nov 2023", ""},
		{"2025-03-01", "1700000000", "Mar 2025", ""}, // the flag wins
		{"", "17e8", "", "SOURCE_DATE_EPOCH"},
		{"", "-", "", "SOURCE_DATE_EPOCH"},
		{"01/03/2025", "", "", "--date"},
	} {
		h, err := manHeader(tc.date, tc.epoch, now)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("manHeader(%q, %q): err %v, want one naming %s", tc.date, tc.epoch, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("manHeader(%q, %q): %v", tc.date, tc.epoch, err)
			continue
		}
		if got := h.Date.Format("Jan 2006"); got != tc.want || h.Section != "8" || h.Title != "" {
			t.Errorf("manHeader(%q, %q): date %s section %q title %q, want %s, 8 and each command's own title",
				tc.date, tc.epoch, got, h.Section, h.Title, tc.want)
		}
	}
}

// `vigil docs man DIR` writes vigil(8) and one page per visible subcommand (issue 16: "man pages
// generated from the cobra commands (vigil(8), one per subcommand)"), none for hidden commands or
// help, each titled after its command; cobra's completion command is there too.
func TestDocsMan(t *testing.T) {
	dir := t.TempDir()
	if _, code, msg := run(t, "docs", "man", "--date", "2026-12-06", dir); code != 0 {
		t.Fatalf("vigil docs man: exit %d: %s", code, msg)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	for _, e := range entries {
		pages = append(pages, e.Name())
	}
	for _, want := range []string{"vigil.8", "vigil-run.8", "vigil-config-push.8", "vigil-vrrp-failover.8", "vigil-completion-bash.8"} {
		if !slices.Contains(pages, want) {
			t.Errorf("no %s among %v", want, pages)
		}
	}
	for _, p := range pages {
		if strings.HasPrefix(p, "vigil-docs") || strings.HasPrefix(p, "vigil-help") {
			t.Errorf("%s: a page for a hidden command or help", p)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "vigil-config-push.8"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `.TH "VIGIL-CONFIG-PUSH" "8" "Dec 2026"`) || strings.Contains(string(b), "Auto generated") {
		t.Errorf("vigil-config-push.8 header:\n%.300s", b)
	}
}

// cobra's default completion command is on (the package ships its output).
func TestCompletionCommand(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_vigil", "zsh": "#compdef vigil", "fish": "complete -c vigil"} {
		out, code, msg := run(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("vigil completion %s: exit %d %s; output lacks %q", shell, code, msg, want)
		}
	}
}
