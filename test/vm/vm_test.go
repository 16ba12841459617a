package vm_test

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vigil/test/vm"
)

// needVM gates the tests that boot qemu: they run as part of the root-only
// network tier (make netns sets VIGIL_NETNS=1). Once asked for, a missing
// prerequisite is a failure, not a skip, so CI cannot pass by not testing.
func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv("VIGIL_NETNS") != "1" {
		t.Skip("boots the test VM; set VIGIL_NETNS=1 (as make netns does)")
	}
	if err := vm.Available(); err != nil {
		t.Fatalf("test VM prerequisites missing; run test/vm/deps.sh as root:\n%v", err)
	}
}

// TestIPVSSmoke builds test/ipvssmoke statically, runs it inside the VM
// and fails with the guest's output if any of its tests failed or skipped.
func TestIPVSSmoke(t *testing.T) {
	needVM(t)
	t.Parallel()
	ctx := context.Background()
	t0 := time.Now()
	bin, err := vm.BuildTest(ctx, "vigil/test/ipvssmoke")
	if err != nil {
		t.Fatal(err)
	}
	built := time.Since(t0)
	res, err := vm.Run(ctx, vm.Spec{
		Files:   map[string]string{"/smoke/ipvssmoke.test": bin},
		Command: []string{"/smoke/ipvssmoke.test", "-test.v", "-test.count=1", "-test.timeout=60s"},
		Timeout: 100 * time.Second,
	})
	t.Logf("kernel %s; build %v, boot %v (guest uptime %v at start), total %v",
		res.Kernel, built.Round(time.Millisecond), res.Boot.Round(time.Millisecond),
		res.GuestUptime, res.Total.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("smoke tests failed in the VM (exit %d):\n%s", res.ExitCode, res.Output)
	}
	// A test that skipped in the VM tested nothing: VIGIL_IN_VM must have
	// reached it and every test must have run.
	for _, name := range []string{"TestIPVSServiceLifecycle", "TestIPVSPerNamespace", "TestNetnsVeth"} {
		if !strings.Contains(res.Output, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the VM", name)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest output:\n%s", res.Output)
	}
}

// TestLBInVM builds test/lbvm statically, runs it in the VM with ipvsadm
// copied in (for the byte-for-byte Render comparison) and fails with the
// guest's output if any of its tests failed or skipped. A scheduler the
// kernel lacks skips only its own subtest; those are logged.
func TestLBInVM(t *testing.T) {
	needVM(t)
	t.Parallel()
	ctx := context.Background()
	ipvsadm, err := exec.LookPath("ipvsadm")
	if err != nil {
		t.Fatalf("ipvsadm not found on the host (package ipvsadm; test/vm/deps.sh installs it): %v", err)
	}
	bin, err := vm.BuildTest(ctx, "vigil/test/lbvm")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"/lbvm/lbvm.test": bin}
	if err := vm.AddProgram(ctx, files, "/usr/sbin/ipvsadm", ipvsadm); err != nil {
		t.Fatal(err)
	}
	res, err := vm.Run(ctx, vm.Spec{
		Files:   files,
		Command: []string{"/lbvm/lbvm.test", "-test.v", "-test.count=1", "-test.timeout=110s"},
		// VIGIL_NETNS lets the sync test build its netlab segment.
		Env:     []string{"VIGIL_IPVSADM=/usr/sbin/ipvsadm", "VIGIL_NETNS=1"},
		Timeout: 140 * time.Second,
	})
	t.Logf("kernel %s; boot %v, total %v", res.Kernel, res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("lb tests failed in the VM (exit %d):\n%s", res.ExitCode, res.Output)
	}
	for _, name := range []string{"TestAvailable", "TestReconcileRoundTrip", "TestReconcileChanges",
		"TestSchedulers", "TestApplyStopsAtFirstError", "TestRenderMatchesIpvsadm",
		"TestSyncDaemonLifecycle", "TestSyncDaemonQuickStop", "TestSyncReplicatesConnections", "TestTunnelsAndPE", "TestTunnelIPv4InIPv6Traffic"} {
		if !strings.Contains(res.Output, "\n--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the VM", name)
		}
	}
	for _, line := range strings.Split(res.Output, "\n") {
		if strings.Contains(line, "--- SKIP: TestSchedulers/") {
			t.Logf("scheduler missing in the VM kernel: %s", strings.TrimSpace(line))
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest output:\n%s", res.Output)
	}
}

// TestLBFleetInVM runs test/lbe2e's TestFleet in the VM: two directors
// running the vigil binary (VRRP and IPVS), real servers and a client in
// namespaces, with real traffic through the VIP. Every guest subtest must
// pass.
func TestLBFleetInVM(t *testing.T) {
	needVM(t)
	t.Parallel()
	runLBE2E(t, "TestFleet", nil, nil, nil, []string{"nat_traffic_through_the_VIP", "dr_traffic_through_the_VIP",
		"udp_traffic_through_the_VIP", "status_and_ipvs_list", "real_server_failure_and_recovery",
		"reload_changes_one_real_server_only", "master_whose_service_fails_gives_up_the_VIP",
		"connection_synced_to_the_backup", "director_failover_keeps_serving", "restart_after_a_crash_touches_nothing",
		"stop_removes_the_virtual_services"})
}

// TestLBFleetViewInVM runs test/lbe2e's TestFleetView in the VM (issue 13):
// three directors gossiping their health checks, real IPVS, one director
// with a broken path to one real server. nft is copied in for the
// check-path-only fault. Every guest subtest must pass; the traffic
// figures (guest lines with RESULT) are logged.
func TestLBFleetViewInVM(t *testing.T) {
	needVM(t)
	t.Parallel()
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Fatalf("nft not found on the host (package nftables; test/deps.sh installs it): %v", err)
	}
	files := map[string]string{}
	if err := vm.AddProgram(context.Background(), files, "/usr/sbin/nft", nft); err != nil {
		t.Fatal(err)
	}
	out := runLBE2E(t, "TestFleetView", files, []string{"VIGIL_NFT=/usr/sbin/nft"}, []string{"nf_tables"}, []string{
		"quorum_keeps_the_real_server_in_every_table", "local_removes_it_from_that_director_only",
		"traffic_before_the_failover", "failover_to_the_director_with_the_fault", "blackhole_with_local:_all_through_r2",
		"blackhole_with_quorum:_r1_scheduled_but_unreachable", "check_path_only_fault_with_quorum:_all_served"})
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "RESULT ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// runLBE2E runs the test/lbe2e test named test (one VM per test: each
// builds its own lab) with the vigil binary of $VIGIL_BIN, files, env and
// kernel modules added, and fails unless the test and each of its
// subtests passed. It returns the guest output.
func runLBE2E(t *testing.T, test string, files map[string]string, env, modules, subtests []string) string {
	t.Helper()
	return runLBE2EFor(t, test, files, env, modules, subtests, 200*time.Second)
}

// runLBE2EFor is runLBE2E with the guest test's time limit (the VM's is
// 40 s more).
func runLBE2EFor(t *testing.T, test string, files map[string]string, env, modules, subtests []string, limit time.Duration) string {
	t.Helper()
	ctx := context.Background()
	vigil := os.Getenv("VIGIL_BIN")
	if vigil == "" {
		t.Fatal("VIGIL_BIN must name the vigil binary (make netns sets it)")
	}
	bin, err := vm.BuildTest(ctx, "vigil/test/lbe2e")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"/lbe2e/lbe2e.test": bin, "/lbe2e/vigil": vigil}
	maps.Copy(all, files)
	res, err := vm.Run(ctx, vm.Spec{
		Files:    all,
		Command:  []string{"/lbe2e/lbe2e.test", "-test.v", "-test.count=1", "-test.run=^" + test + "$", "-test.timeout=" + limit.String()},
		Env:      append([]string{"VIGIL_BIN=/lbe2e/vigil", "VIGIL_NETNS=1"}, env...),
		Modules:  modules,
		Timeout:  limit + 40*time.Second,
		CPUs:     2,
		MemoryMB: 1024,
	})
	t.Logf("kernel %s; boot %v, total %v", res.Kernel, res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s failed in the VM (exit %d):\n%s", test, res.ExitCode, res.Output)
	}
	for _, name := range append([]string{test}, subtests...) {
		if name != test {
			name = test + "/" + name
		}
		if !strings.Contains(res.Output, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the VM", name)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("guest output:\n%s", res.Output)
	}
	return res.Output
}

// TestLBRolloutBenchVM runs test/lbe2e's TestFleetRolloutIPVS in the VM
// (issue 14's rollout of a 1,000-virtual-server document, programmed into
// real IPVS by every member) and logs its figures. Not part of make test:
// it runs only with VIGIL_BENCH=1 (make bench); VIGIL_ROLLOUT_MEMBERS
// sets the fleet's size (default 5).
func TestLBRolloutBenchVM(t *testing.T) {
	if os.Getenv("VIGIL_BENCH") != "1" {
		t.Skip("benchmark: set VIGIL_BENCH=1 (and VIGIL_NETNS=1)")
	}
	needVM(t)
	env := []string{"VIGIL_BENCH=1"}
	if n := os.Getenv("VIGIL_ROLLOUT_MEMBERS"); n != "" {
		env = append(env, "VIGIL_ROLLOUT_MEMBERS="+n)
	}
	out := runLBE2EFor(t, "TestFleetRolloutIPVS", nil, env, nil, nil, 15*time.Minute)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "RESULT ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// TestLBBenchVM runs test/lbvm's reconcile benchmark in the VM and logs
// its figures. It is not part of make test: it runs only with
// VIGIL_BENCH=1, and fails if the benchmark did not run and pass.
func TestLBBenchVM(t *testing.T) {
	if os.Getenv("VIGIL_BENCH") != "1" {
		t.Skip("benchmark: set VIGIL_BENCH=1 (and VIGIL_NETNS=1)")
	}
	needVM(t)
	ctx := context.Background()
	tools := map[string]string{}
	for _, name := range []string{"ipvsadm", "keepalived"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s not found on the host (Debian package %s; test/deps.sh installs both): %v", name, name, err)
		}
		tools[name] = p
	}
	vigil := os.Getenv("VIGIL_BIN")
	if vigil == "" {
		t.Fatal("VIGIL_BIN must name the vigil binary (make bench sets it)")
	}
	bin, err := vm.BuildTest(ctx, "vigil/test/lbvm")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"/lbvm/lbvm.test": bin, "/lbvm/vigil": vigil}
	for name, p := range tools {
		if err := vm.AddProgram(ctx, files, "/usr/sbin/"+name, p); err != nil {
			t.Fatal(err)
		}
	}
	// VIGIL_LB_BENCH_RUN narrows the run to one benchmark (a -test.run
	// pattern), e.g. ^TestBenchDaemons$.
	pattern := cmp.Or(os.Getenv("VIGIL_LB_BENCH_RUN"), "^TestBench")
	// The daemons are timed on one vCPU and again on two: vigil's start
	// parses a large file on every core, keepalived's does not.
	runs := []struct {
		cpus    int
		pattern string
	}{{1, pattern}}
	if regexp.MustCompile(pattern).MatchString("TestBenchDaemons") {
		runs = append(runs, struct {
			cpus    int
			pattern string
		}{2, "^TestBenchDaemons$"})
	}
	for _, run := range runs {
		res, err := vm.Run(ctx, vm.Spec{
			Files:   files,
			Command: []string{"/lbvm/lbvm.test", "-test.v", "-test.count=1", "-test.run=" + run.pattern, "-test.timeout=580s"},
			Env: []string{"VIGIL_IPVSADM=/usr/sbin/ipvsadm", "VIGIL_LB_BENCH=1", "VIGIL_BIN=/lbvm/vigil",
				"VIGIL_KEEPALIVED=/usr/sbin/keepalived"},
			Timeout:  600 * time.Second,
			MemoryMB: 1536,
			CPUs:     run.cpus,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kernel %s, %d vCPU\n%s", res.Kernel, run.cpus, res.Output)
		for _, name := range []string{"TestBenchReconcile", "TestBenchDaemons"} {
			if !regexp.MustCompile(run.pattern).MatchString(name) {
				continue
			}
			if res.ExitCode != 0 || !strings.Contains(res.Output, "--- PASS: "+name+" ") {
				t.Errorf("benchmark %s failed or skipped in the VM (%d vCPU, exit %d)", name, run.cpus, res.ExitCode)
			}
		}
	}
}

// TestRunProtocol checks what Run promises: files land at their guest
// paths with their modes, arguments arrive unmangled, the environment is
// passed, stdout and stderr both come back, and a non-zero exit status is a
// result, not an error.
func TestRunProtocol(t *testing.T) {
	needVM(t)
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, []byte("payload\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	script := `cat /in/data; stat -c %a /in/data; echo "arg=[$1]"; echo "env=$GREETING in_vm=$VIGIL_IN_VM"
echo to-stderr >&2; printf 'no newline at end'; exit 7`
	res, err := vm.Run(context.Background(), vm.Spec{
		Files:   map[string]string{"/in/data": data},
		Command: []string{"sh", "-c", script, "sh", `it's "quoted" $HOME`},
		Env:     []string{"GREETING=hello world"},
		Timeout: 60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "payload\n640\narg=[it's \"quoted\" $HOME]\nenv=hello world in_vm=1\nto-stderr\nno newline at end"
	if res.Output != want || res.ExitCode != 7 {
		t.Fatalf("got exit %d, output %q\nwant exit 7, output %q", res.ExitCode, res.Output, want)
	}
	if !strings.Contains(res.Console, "vigil-init: modules loaded") {
		t.Errorf("console lacks init's progress lines:\n%s", res.Console)
	}
	t.Logf("boot %v, total %v", res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
}

// TestRunTimeout checks that a run past its deadline kills qemu promptly
// and says so, with the console tail for diagnosis.
func TestRunTimeout(t *testing.T) {
	needVM(t)
	t.Parallel()
	start := time.Now()
	_, err := vm.Run(context.Background(), vm.Spec{
		Command: []string{"sleep", "600"},
		Timeout: 3 * time.Second,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if !regexp.MustCompile(`timed out after 3s .*last console lines`).MatchString(strings.ReplaceAll(err.Error(), "\n", " ")) {
		t.Errorf("error lacks the timeout and console tail: %v", err)
	}
	t.Logf("error as reported: %v", err)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run returned %v after start with a 3s timeout", d)
	}
}

// TestRunInitFailure checks that a failed init step (here a module that
// does not exist) is reported by name instead of as a timeout.
func TestRunInitFailure(t *testing.T) {
	needVM(t)
	t.Parallel()
	_, err := vm.Run(context.Background(), vm.Spec{
		Command: []string{"true"},
		Modules: []string{"vigil_no_such_module"},
		Timeout: 60 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), `guest init failed at step "modprobe vigil_no_such_module"`) {
		t.Fatalf("want an init failure naming the module, got %v", err)
	}
}
