#!/usr/bin/env bash
# Builds Jaeger (the trace backend of vigil's tests, issue 15) once from the Go module pinned in
# this directory's go.mod and caches the binary; prints the binary's path. Later runs only print it:
# the build takes minutes and the pinned version never changes under the same name.
#   VIGIL_JAEGER_CACHE   cache directory (default /var/cache/vigil-test)
# The tests look for the same file (test/tracing: VIGIL_JAEGER, else $VIGIL_JAEGER_CACHE/jaeger-VERSION).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The version comes from go.mod so that bumping the module renames the cached binary.
version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2; exit }' "$here/go.mod")
if [ -z "$version" ]; then
	echo "test/jaeger/build.sh: no github.com/jaegertracing/jaeger requirement in $here/go.mod" >&2
	exit 1
fi
cache=${VIGIL_JAEGER_CACHE:-/var/cache/vigil-test}
bin=$cache/jaeger-$version
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	echo "test/jaeger/build.sh: cannot write $cache; run as root or set VIGIL_JAEGER_CACHE" >&2
	exit 1
fi
echo "test/jaeger/build.sh: building jaeger $version into $bin (once; takes minutes)" >&2
tmp=$(mktemp "$cache/.jaeger-$version.XXXXXX")
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
# CGO off: a static binary that runs in any namespace; -s -w: the symbol tables are not needed.
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
chmod 755 "$tmp"
# rename(2) is atomic: a concurrent run sees either no binary or a whole one.
mv -f "$tmp" "$bin"
trap - EXIT
echo "test/jaeger/build.sh: built in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
echo "$bin"
