#!/usr/bin/env bash
# Installs, from Debian's packages, what vigil's tests, demo and benchmarks use.
# Idempotent: does nothing when everything is present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have tcpdump || need+=(tcpdump)
have keepalived || need+=(keepalived)
have ping || need+=(iputils-ping)
have tshark || need+=(tshark)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	echo "test/deps.sh: missing ${need[*]}; run as root to install them" >&2
	exit 1
fi
echo "test/deps.sh: installing ${need[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# keepalived's package enables a service; the tests start their own copies.
if have systemctl; then systemctl disable --now keepalived >/dev/null 2>&1 || true; fi
