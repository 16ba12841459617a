package deb

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const policyRcD = "/usr/sbin/policy-rc.d"

// pathsOnlyThePackageMakes are what a host without vigil does not have: the test refuses to run
// when one exists (it would be purged), and checks all are gone after dpkg -P.
var pathsOnlyThePackageMakes = []string{
	"/usr/sbin/vigil",
	"/etc/vigil",
	"/etc/default/vigil",
	"/var/lib/vigil",
	"/etc/systemd/system/multi-user.target.wants/vigil.service",
	"/var/lib/systemd/deb-systemd-helper-enabled/vigil.service.dsh-also",
	"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/vigil.service",
}

// packageStatus is dpkg's status of vigil ("" when dpkg never heard of it).
func packageStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "vigil").Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "" // no such package
	}
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// The package installs, holds what issue 16 lists, and goes away without a trace: dpkg -i with
// every service start denied (policy-rc.d, as on a host where the operator has not configured
// vigil yet), then dpkg -r (conffiles stay, as Debian policy has it) and dpkg -P (nothing stays:
// not the conffiles, not the state directory the daemon made, not the enablement).
func TestInstallRemove(t *testing.T) {
	requireRoot(t)
	requireTools(t, map[string]string{"dpkg": "dpkg", "dpkg-query": "dpkg", "systemd-analyze": "systemd", "man": "man-db", "bash": "bash"})
	deb := debPackage(t)

	if st := packageStatus(t); st != "" && !strings.HasPrefix(st, "un") {
		t.Fatalf("a vigil package is on this host already (dpkg status %q): refusing to install over it and purge it "+
			"(if it is a leftover of this test: dpkg -P vigil)", st)
	}
	for _, p := range pathsOnlyThePackageMakes {
		if exists(p) {
			t.Fatalf("%s exists already: refusing to install the package, whose purge would remove it", p)
		}
	}
	if exists(policyRcD) {
		// Someone else's (a container's, or test/deps.sh's while it installs): it must deny.
		err := exec.Command(policyRcD, "vigil.service", "start").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 101 {
			t.Fatalf("%s exists and does not deny starting vigil.service (%v): refusing to install", policyRcD, err)
		}
	} else {
		if err := os.WriteFile(policyRcD, []byte("#!/bin/sh\n# test/deb: no service starts while it installs vigil\nexit 101\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(policyRcD) })
	}
	t.Cleanup(func() {
		if st := packageStatus(t); st != "" && !strings.HasPrefix(st, "un") {
			if out, err := exec.Command("dpkg", "-P", "vigil").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg -P vigil: %v\n%s", err, out)
			}
		}
	})

	t.Logf("dpkg -i: %s", run(t, "dpkg", "-i", deb))
	if st := packageStatus(t); st != "ii" {
		t.Fatalf("after dpkg -i: status %q, want ii", st)
	}

	// Every file the package lists is there; those issue 16 names are among them.
	listed := strings.Fields(run(t, "dpkg", "-L", "vigil"))
	for _, p := range listed {
		if !exists(p) {
			t.Errorf("dpkg -L lists %s, which is not there", p)
		}
	}
	for _, want := range []string{
		"/usr/sbin/vigil",
		"/usr/lib/systemd/system/vigil.service",
		"/etc/vigil/vigil.yaml.sample",
		"/etc/default/vigil",
		"/usr/lib/modules-load.d/vigil.conf",
		"/usr/lib/sysctl.d/vigil.conf",
		"/usr/share/bash-completion/completions/vigil",
		"/usr/share/zsh/vendor-completions/_vigil",
		"/usr/share/fish/vendor_completions.d/vigil.fish",
		"/usr/share/man/man8/vigil.8.gz",
		"/usr/share/man/man8/vigil-run.8.gz",
		"/usr/share/man/man8/vigil-config-push.8.gz",
		"/usr/share/man/man8/vigil-vrrp-failover.8.gz",
		"/usr/share/vigil/grafana/vigil.json",
		"/usr/share/vigil/prometheus/vigil.rules.yaml",
		"/usr/share/doc/vigil/copyright",
		"/usr/share/doc/vigil/changelog.Debian.gz",
		"/usr/share/doc/vigil/examples/vigil.yaml",
	} {
		if !slices.Contains(listed, want) {
			t.Errorf("the package has no %s", want)
		}
	}
	for _, p := range listed {
		if strings.Contains(p, "vigil-docs") {
			t.Errorf("%s: a page of the hidden docs command", p)
		}
	}
	// No live configuration: ConditionFileNotEmpty= keeps the unit from starting until the
	// operator writes one (keepalived's model).
	if exists("/etc/vigil/vigil.yaml") {
		t.Error("the package installed /etc/vigil/vigil.yaml: the unit would start on an example")
	}
	conffiles := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "vigil")
	for _, c := range []string{"/etc/default/vigil", "/etc/vigil/vigil.yaml.sample"} {
		if !strings.Contains(conffiles, c+" ") {
			t.Errorf("%s is not a conffile: %q", c, conffiles)
		}
	}
	// Enabled on installation (deb-systemd-helper), though not started.
	if !exists("/etc/systemd/system/multi-user.target.wants/vigil.service") {
		t.Error("vigil.service is not enabled after installation")
	}

	if out := run(t, "/usr/sbin/vigil", "version"); !strings.HasPrefix(out, "vigil ") {
		t.Errorf("vigil version: %q", out)
	}
	man := exec.Command("man", "-P", "cat", "-l", "/usr/share/man/man8/vigil-config-push.8.gz")
	man.Env = append(os.Environ(), "MANWIDTH=80")
	out, err := man.CombinedOutput()
	text := strings.Join(strings.Fields(string(out)), " ") // man justifies with extra spaces
	if err != nil || !strings.Contains(text, "vigil-config-push - Push a fleet document") || !strings.Contains(text, "SEE ALSO vigil-config(8)") {
		t.Errorf("man -l vigil-config-push.8.gz: %v\n%s", err, out)
	}
	// The completion script loads and completes, through the installed binary (`vigil __complete`).
	if exists("/usr/share/bash-completion/bash_completion") {
		out, err := exec.Command("bash", "-c", `PATH=/usr/sbin:$PATH
. /usr/share/bash-completion/bash_completion
. /usr/share/bash-completion/completions/vigil
COMP_WORDS=(vigil config p); COMP_CWORD=2; COMP_LINE="vigil config p"; COMP_POINT=${#COMP_LINE}
__start_vigil 2>/dev/null
echo "${COMPREPLY[*]}"`).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "push" {
			t.Errorf("bash completion of \"vigil config p\": %v: %q, want push", err, out)
		}
	} else {
		t.Log("bash-completion is not installed: only checking that the script loads")
		if out, err := exec.Command("bash", "-c", ". /usr/share/bash-completion/completions/vigil && complete -p vigil").CombinedOutput(); err != nil {
			t.Errorf("loading the bash completion: %v\n%s", err, out)
		}
	}
	// systemd's own check of the installed unit: syntax, the Exec*= binaries, the man pages of
	// Documentation=.
	if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/vigil.service").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// What the daemon would leave (StateDirectory=vigil, the fleet state): purge removes it.
	if err := os.MkdirAll("/var/lib/vigil/fleet", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/var/lib/vigil/fleet/current.yaml", []byte("vrrp: {}\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	run(t, "dpkg", "-r", "vigil")
	if st := packageStatus(t); st != "rc" {
		t.Errorf("after dpkg -r: status %q, want rc (conffiles kept)", st)
	}
	for _, p := range listed {
		if strings.HasPrefix(p, "/usr/") && !isDir(p) && exists(p) {
			t.Errorf("after dpkg -r: %s is still there", p)
		}
	}
	if !exists("/etc/default/vigil") {
		t.Error("dpkg -r removed the conffile /etc/default/vigil (only purge should)")
	}

	run(t, "dpkg", "-P", "vigil")
	if st := packageStatus(t); st != "" && !strings.HasPrefix(st, "un") {
		t.Errorf("after dpkg -P: status %q", st)
	}
	for _, p := range append(slices.Clone(pathsOnlyThePackageMakes), "/usr/share/doc/vigil", "/usr/share/vigil", "/run/vigil") {
		if exists(p) {
			t.Errorf("after dpkg -P: %s is still there", p)
		}
	}
	for _, p := range listed {
		if !isDir(p) && exists(p) {
			t.Errorf("after dpkg -P: %s is still there", p)
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
