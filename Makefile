# vigil — build, test, demo, bench. `make test` is what CI (.ci/run) runs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X vigil/internal/buildinfo.Version=$(VERSION) -X vigil/internal/buildinfo.Revision=$(REVISION)
BIN := bin/vigil
# Packages whose tests need no privileges, and the root-only network tiers.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '^vigil/test')
# Packages outside test/ with root-only namespace tests (gated on VIGIL_NETNS, directly or through
# netlab.Require/NewForTest): unit runs them with those tests skipped, netns runs them again with
# VIGIL_NETNS=1.
NETNS_PKGS = $(sort $(dir $(shell grep -rlE --include='*_test.go' --exclude-dir=test --exclude-dir=.git \
	'VIGIL_NETNS|netlab\.(Require|NewForTest)' .)))

.PHONY: all build test unit netns deps demo bench fuzz lint clean deb

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

# The Debian package dist/vigil_VERSION_amd64.deb (deploy/deb/build.sh: how, and the version).
deb: build
	@bash deploy/deb/build.sh $(BIN) dist

# Installs what the tests need from Debian's packages on first use, and builds Jaeger (the trace
# backend of test/tracing) from its own module in test/jaeger once into its cache.
deps:
	@bash test/deps.sh
	@bash test/vm/deps.sh
	@bash test/jaeger/build.sh >/dev/null

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# deploy/k8s/kubecheck is a module of its own: the Kubernetes API's types and schemas stay out of
# vigil's go.mod and binary.
unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)
	cd deploy/k8s/kubecheck && $(GO) test -race -count=1 ./...

# The drivers' namespace tests (NETNS_PKGS, with -race as in unit), then network-namespace
# scenarios, keepalived interop, metrics scraped by a real Prometheus (test/prom) and the IPVS VM:
# root only.
netns: build
	@if [ "$$(id -u)" != 0 ]; then echo "make netns: needs root (network namespaces)"; exit 1; fi
	VIGIL_NETNS=1 $(GO) test -race -count=1 -p 1 -timeout 10m $(NETNS_PKGS)
	VIGIL_NETNS=1 VIGIL_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 25m ./test/...

test: deps lint unit netns

demo: deps build
	@if [ "$$(id -u)" != 0 ]; then echo "make demo: needs root (network namespaces); try: sudo make demo"; exit 1; fi
	$(BIN) demo

# vigil vs keepalived side by side (test/bench), then the IPVS apply benchmark in the test VM and
# the health-check throughput benchmarks: progress and figures on stdout and in bench.out,
# the Markdown report in $VIGIL_BENCH_REPORT (default bench-report.md); VIGIL_BENCH_RUNS=3 makes a
# quick trial run (default 20 repetitions per takeover scenario).
bench: deps build
	@if [ "$$(id -u)" != 0 ]; then echo "make bench: needs root"; exit 1; fi
	set -o pipefail; VIGIL_NETNS=1 VIGIL_BIN=$(CURDIR)/$(BIN) VIGIL_BENCH_REPORT=$${VIGIL_BENCH_REPORT:-$(CURDIR)/bench-report.md} \
	  $(GO) test -count=1 -p 1 -timeout 60m -run '^$$' -bench . -benchtime 1x ./test/bench/ | tee bench.out
	@echo "== IPVS in the test VM: 1,000 virtual servers x 10 real servers, vigil vs ipvsadm and keepalived" | tee -a bench.out
	set -o pipefail; VIGIL_NETNS=1 VIGIL_BENCH=1 VIGIL_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m -run 'LBBenchVM' -v ./test/vm/ | grep -v '^=== ' | tee -a bench.out
	@echo "== a fleet rollout in the test VM: a 1,000 x 10 document pushed to 5 members, each programming its own IPVS" | tee -a bench.out
	set -o pipefail; VIGIL_NETNS=1 VIGIL_BENCH=1 VIGIL_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -run 'LBRolloutBenchVM' -v ./test/vm/ | grep -v '^=== ' | tee -a bench.out
	@echo "== desired-table diff (pure), parsing a 1,000 x 10 config, and health-check throughput on this host" | tee -a bench.out
	set -o pipefail; $(GO) test -count=1 -run '^$$' -bench . ./lb/ | tee -a bench.out
	set -o pipefail; $(GO) test -count=1 -run '^$$' -bench . -benchmem ./config/ ./lb/balancer/ | tee -a bench.out
	set -o pipefail; $(GO) test -count=1 -run '^$$' -bench . -benchtime 2s ./lb/check/ | tee -a bench.out
	set -o pipefail; $(GO) test -count=1 -timeout 20m -run '^$$' -bench Gossip -benchtime 1x ./gossip/ | tee -a bench.out
	@echo "== the fleet in namespaces: split brain (vigil with and without arbitration, keepalived) and 200 instances with gossip" | tee -a bench.out
	set -o pipefail; VIGIL_NETNS=1 VIGIL_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -run '^$$' -bench . -benchtime 1x ./test/fleet/ | grep -v '^        time=' | tee -a bench.out

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-60s} ./vrrp/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $${FUZZTIME:-60s} ./internal/kaconf/
	$(GO) test -run '^$$' -fuzz FuzzDecodeRows -fuzztime $${FUZZTIME:-60s} ./gossip/
	$(GO) test -run '^$$' -fuzz FuzzLoaderMatchesParse -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 1s ./config/
	$(GO) test -run '^$$' -fuzz FuzzReadMatchesViper -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 1s ./config/
	$(GO) test -run '^$$' -fuzz FuzzQuickItem -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 1s ./config/
	$(GO) test -run '^$$' -fuzz FuzzHTTP10Reply -fuzztime $${FUZZTIME:-60s} ./lb/check/
	$(GO) test -run '^$$' -fuzz FuzzHTTPVerdict -fuzztime $${FUZZTIME:-60s} ./lb/check/
	$(GO) test -run '^$$' -fuzz FuzzSMTPReplies -fuzztime $${FUZZTIME:-60s} ./lb/check/
	$(GO) test -run '^$$' -fuzz FuzzDNSReply -fuzztime $${FUZZTIME:-60s} ./lb/check/
	$(GO) test -run '^$$' -fuzz FuzzRequest -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 1s ./node/api/

clean:
	rm -rf bin bench.out dist
