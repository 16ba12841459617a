// Package deb tests the Debian package that `make deb` builds (deploy/deb) and the systemd unit in
// it, the way an operator meets them:
//
//   - lintian on the package: no error and no warning (the accepted ones are overridden, with the
//     reason, in deploy/deb/lintian-overrides);
//   - `systemd-analyze security --offline=true` on the unit: the exposure score at or below
//     maxExposure (a regression check; docs/deployment.md has the full table);
//   - installation on this host with `dpkg -i` (a policy-rc.d denies every service start), the
//     files, `vigil version`, `man -l vigil.8.gz`, bash completion of the installed binary,
//     `systemd-analyze verify` on the installed unit, then `dpkg -r` and `dpkg -P`: nothing left;
//   - the unit's SystemCallFilter=: a vigil daemon with scripts, a notify FIFO, notify commands and
//     a process tracker running as another user, traced with strace in a network namespace, calls
//     nothing outside the filter's set;
//   - modules-load.d lists every IPVS scheduler the configuration accepts (but ip_vs_twos, which
//     Debian 12's kernel lacks);
//   - the unit under a real systemd: a Debian 12 root file system (test/deb/rootfs.sh builds it once
//     with mmdebstrap into /var/cache/vigil-test) with the package installed boots with
//     systemd-nspawn in a lab node's network namespace; vigil.service starts (validation,
//     Type=notify), runs with the unit's capabilities, no_new_privs and seccomp, takes the VIP as
//     VRRP master, is restarted by the watchdog when hung, reloads, and stops removing it.
//
// The last runs anywhere; the others are root-only and gated like the other root tiers
// (VIGIL_NETNS=1, see test/netlab), and skip, saying which, when dpkg-deb, lintian,
// systemd-analyze, man, strace, systemd-nspawn or mmdebstrap are missing (test/deps.sh installs
// them). The package is
// $VIGIL_DEB when set, else built once from $VIGIL_BIN (make netns sets it) or a fresh build:
//
//	VIGIL_NETNS=1 go test -count=1 -v ./test/deb/
//
// The installation test refuses to run when a vigil package (or /usr/sbin/vigil, /etc/vigil,
// /var/lib/vigil) is already on the host, and purges what it installed even when it fails.
package deb
