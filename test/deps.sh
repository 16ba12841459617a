#!/usr/bin/env bash
# Installs, from Debian's packages, what vigil's tests, demo and benchmarks use
# (prometheus ships both prometheus and promtool, for test/prom; nft, from nftables, drops
# VRRP in test/fault's one-way and random-loss scenarios).
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have tcpdump || need+=(tcpdump)
have keepalived || need+=(keepalived)
have ping || need+=(iputils-ping)
have tshark || need+=(tshark)
have nft || need+=(nftables)
{ have prometheus && have promtool; } || need+=(prometheus)
# test/deb: lintian, systemd-analyze, strace (the unit's syscall filter), man and bash-completion, systemd-nspawn and mmdebstrap (a booted Debian 12 starts the unit).
have lintian || need+=(lintian); have systemd-analyze || need+=(systemd); have strace || need+=(strace); have man || need+=(man-db); have systemd-nspawn || need+=(systemd-container)
have mmdebstrap || need+=(mmdebstrap); [ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	echo "test/deps.sh: missing ${need[*]}; run as root to install them" >&2
	exit 1
fi
echo "test/deps.sh: installing ${need[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
# keepalived's and prometheus' packages start a service on installation; the
# tests start their own copies. Without systemd, prometheus' init script would
# start a server on :9090 in the root namespace: a policy-rc.d that denies
# every start, for the length of the installation only (an existing one, as in
# containers, is left alone).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# test/deps.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
for svc in keepalived prometheus; do
	if have systemctl; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
	if [ -x "/etc/init.d/$svc" ] && have update-rc.d; then update-rc.d "$svc" disable >/dev/null 2>&1 || true; fi
done
for b in prometheus promtool; do
	have "$b" || { echo "test/deps.sh: $b missing after installing prometheus" >&2; exit 1; }
done
