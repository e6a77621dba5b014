#!/usr/bin/env bash
# Unpacks the Xtensa port's own soft-float routines from Debian's
# gcc-12-source package into CACHE_DIR/softfloat: libgcc/config/xtensa/
# lib1funcs.S with ieee754-sf.S and ieee754-df.S (GCC's code, under the GCC
# runtime library exception; never committed here). Debian's lx106 libgcc
# lacks most of them (see firmware/README.md, "Soft-float"). Idempotent.
# Usage: fetch-gcc-float.sh CACHE_DIR
set -euo pipefail
cache=$(mkdir -p "$1" && cd "$1" && pwd)
out="$cache/softfloat"
[ -f "$out/lib1funcs.S" ] && [ -f "$out/ieee754-df.S" ] && [ -f "$out/ieee754-sf.S" ] && exit 0

dl="$cache/dl"
mkdir -p "$dl"
deb=$(ls "$dl"/gcc-12-source_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
    echo "fetching Debian's gcc-12-source (about 80 MB, once) for the lx106's soft-float routines"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    # A fresh machine may have no package lists yet: refresh once and retry,
    # under the lock ci/deps.sh takes (other make jobs install at the same
    # time, and a second `apt-get update` fails on apt's own lock).
    (cd "$dl" && apt-get download gcc-12-source 2>/dev/null) ||
        { flock "${TMPDIR:-/tmp}/mqtt-hil-apt.lock" $sudo apt-get update -qq &&
          (cd "$dl" && apt-get download gcc-12-source); } || {
            echo "error: apt-get download gcc-12-source failed (is Debian's archive reachable?)" >&2
            exit 1
        }
    deb=$(ls "$dl"/gcc-12-source_*.deb | head -n1)
fi
tmp="$cache/softfloat.tmp"
rm -rf "$tmp" && mkdir -p "$tmp"
# The package holds GCC's release tarball; only three files are needed.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './usr/src/gcc-12/gcc-*.tar.*'
tarball=$(ls "$tmp"/usr/src/gcc-12/gcc-*.tar.* | head -n1)
tar -x -C "$tmp" -f "$tarball" --wildcards \
    '*/libgcc/config/xtensa/lib1funcs.S' \
    '*/libgcc/config/xtensa/ieee754-sf.S' \
    '*/libgcc/config/xtensa/ieee754-df.S'
src=$(dirname "$(find "$tmp" -path '*/libgcc/config/xtensa/lib1funcs.S' | head -n1)")
base=$(basename "$tarball")
mkdir -p "$out"
cp "$src"/*.S "$out/"
echo "$base (from $(basename "$deb"))" > "$out/VERSION"
rm -rf "$tmp"
echo "soft-float routines unpacked: $(cat "$out/VERSION")"
