#!/usr/bin/env bash
# Fetches Debian's lwip source package into CACHE_DIR and unpacks it there,
# through a private deb-src list so the system's apt configuration is never
# touched. Idempotent: does nothing once the unpacked tree exists.
# Usage: fetch-lwip.sh CACHE_DIR
set -euo pipefail
cache=$(mkdir -p "$1" && cd "$1" && pwd)
[ -f "$cache/lwip/src/core/tcp.c" ] && exit 0

apt_dir="$cache/apt"
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$cache/dl"
# Same mirrors and keys as the system list, only the type changes.
sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > "$apt_dir/sources/debian-src.sources"
opts=(-o Dir::Etc::SourceList=/dev/null
      -o Dir::Etc::SourceParts="$apt_dir/sources"
      -o Dir::State::Lists="$apt_dir/lists"
      -o Dir::Cache="$apt_dir/cache"
      -o APT::Sandbox::User=root)
mkdir -p "$apt_dir/cache/archives/partial"
echo "fetching lwip source package (private deb-src list in $apt_dir)"
apt-get "${opts[@]}" update -qq
(cd "$cache/dl" && apt-get "${opts[@]}" source --download-only lwip)
dsc=$(ls "$cache"/dl/lwip_*.dsc | head -n1)
rm -rf "$cache/lwip.tmp"
# apt already checked the files against the signed index; --no-check only
# skips the .dsc's own OpenPGP signature (debian-keyring is not installed).
dpkg-source --no-check -x "$dsc" "$cache/lwip.tmp" >/dev/null
mv "$cache/lwip.tmp" "$cache/lwip"
echo "lwip unpacked: $(sed -n 1p "$cache/lwip/debian/changelog")"
