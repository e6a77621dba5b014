#!/usr/bin/env bash
# Builds the broker images the conformance matrix runs, locally, from Debian
# packages: no image registry is needed (none is reachable on our machines).
#
# Each image is a root filesystem assembled from .deb files (`apt-get
# download` + `dpkg -x`, no maintainer scripts run) and the files in
# ci/images/NAME/, turned into an image by `docker import`. The dependency
# closure is followed through Depends/Pre-Depends, minus the packages a
# container never uses (EXCLUDE below: package tools, init systems, shells'
# helpers) — measured, this keeps RabbitMQ's Erlang closure to what runs.
#
# An image is rebuilt only when its recipe changes: the recipe's hash is in
# the image's `mqtt-hil.recipe` label and compared before anything is done.
#
# Usage: ci/images/build.sh [--force] [NAME...]   (default: every recipe)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -f "$d/recipe" ] && names+=("$(basename "$d")"); done
fi
cache="${MQTT_HIL_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-hil/debs}"
mkdir -p "$cache"

command -v docker >/dev/null || { echo "error: docker is not installed (Debian package docker.io)" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "error: the Docker engine does not answer (is dockerd running? try: service docker start)" >&2; exit 2; }

# Never wanted inside a broker image: installers, init systems, interpreters
# that only maintainer scripts use, tools whose job a container does not have.
EXCLUDE_RE='^(adduser|debconf|cdebconf|dpkg|install-info|lsb-base|passwd|sysvinit-utils|tar|procps|logrotate|socat|openssl|python3.*|libpython3.*|perl|perl-base|perl-modules.*|libperl.*|systemd.*|libsystemd-shared|init-system-helpers|usrmerge|usr-is-merged|cron.*|anacron|bcron|runit-helper|sysuser-helper|opensysusers|mount|util-linux|libpam.*|mime-support|mailcap|media-types|readline-common|gcc-12-base|libdebian-installer4|libnewt.*|libslang.*|libtextwrap1|sensible-utils|libsemanage.*|libsepol.*|libaudit.*|ucspi-unix|daemon|dmsetup|libdevmapper.*|libcryptsetup.*|libfdisk1|libkmod2|libapparmor1|libseccomp2|libip4tc2|libargon2-1|libjson-c5)$'

# The packages NAMES and everything they depend on, one a line. One
# apt-cache call per level of the dependency tree (a call per package costs
# a second each on a busy machine).
closure() {
  declare -A seen=()
  local level=("$@") next p
  while [ ${#level[@]} -gt 0 ]; do
    next=()
    local todo=()
    for p in "${level[@]}"; do
      [ -n "${seen[$p]:-}" ] && continue
      seen[$p]=1
      [[ "$p" =~ $EXCLUDE_RE ]] && continue
      echo "$p"; todo+=("$p")
    done
    [ ${#todo[@]} -eq 0 ] && break
    # First choice of each alternative group; virtual packages skipped.
    mapfile -t next < <(
      apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "${todo[@]}" 2>/dev/null | awk '
        /^[^ ]/ { skip = 0; next }
        /^ *\|?(Pre)?Depends: / {
          alt = ($1 ~ /^\|/); name = $2
          if (!skip && name !~ /^</) { sub(/:any$/, "", name); print name }
          skip = alt; next
        }' | sort -u)
    level=("${next[@]}")
  done
}

build_one() {
  local name="$1" dir="$here/$1"
  [ -f "$dir/recipe" ] || { echo "error: no recipe ci/images/$name/recipe" >&2; exit 2; }
  # shellcheck source=/dev/null
  PACKAGES=(); ENTRYPOINT=""; EXPOSE=""; ENV=(); IMAGE=""; EXTRA=(); source "$dir/recipe"
  local hash
  hash=$(cd "$here" && cat build.sh $(find "$name" -type f | sort) | sha256sum | cut -c1-16)
  local have
  have=$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "mqtt-hil.recipe" }}' 2>/dev/null || true)
  if [ "$force" = 0 ] && [ "$have" = "$hash" ]; then
    echo "== $IMAGE is up to date (recipe $hash)"
    return
  fi
  local t0=$SECONDS
  echo "== building $IMAGE (recipe $hash)"
  # Without package lists apt-cache knows no dependencies, and the image
  # would silently lack its libraries.
  if ! apt-cache show "${PACKAGES[0]}" >/dev/null 2>&1; then
    echo "   apt has no package lists yet: apt-get update"
    apt-get update -qq
  fi
  local pkgs
  mapfile -t pkgs < <(closure "${PACKAGES[@]}" | sort -u)
  echo "   ${#pkgs[@]} packages: ${pkgs[*]}"
  # apt-get download fetches only what the cache lacks.
  local want
  want=$(cd "$cache" && for p in "${pkgs[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$want" ]; then
    # A stale package list names versions the mirror no longer has: refresh
    # it once and try again.
    (cd "$cache" && apt-get download -qq -o APT::Sandbox::User=root $want) 2>/dev/null \
      || { apt-get update -qq && (cd "$cache" && apt-get download -qq -o APT::Sandbox::User=root $want); } \
      || { echo "error: apt-get download of $want failed (see above)" >&2; exit 2; }
  fi
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/mqtt-hil-image.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  for p in "${pkgs[@]}"; do
    local deb
    deb=$(ls -t "$cache/${p}"_*.deb | head -1)
    dpkg -x "$deb" "$root"
  done
  mkdir -p "$root"/{etc,tmp,data,var/run,var/log,var/lib} && chmod 1777 "$root/tmp"
  printf 'include /etc/ld.so.conf.d/*.conf\n' > "$root/etc/ld.so.conf"
  printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$root/etc/ld.so.conf.d/multiarch.conf"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  [ -d "$dir/files" ] && cp -a "$dir/files/." "$root/"
  if declare -F assemble >/dev/null; then assemble "$root"; unset -f assemble; fi
  ldconfig -r "$root" 2>/dev/null || true
  local changes=(--change "ENTRYPOINT $ENTRYPOINT" --change "LABEL mqtt-hil.recipe=$hash")
  for p in $EXPOSE; do changes+=(--change "EXPOSE $p"); done
  for e in "${ENV[@]}"; do changes+=(--change "ENV $e"); done
  tar -C "$root" -c . | docker import "${changes[@]}" - "$IMAGE" >/dev/null
  echo "   $IMAGE: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}') in $((SECONDS - t0))s"
}

for n in "${names[@]}"; do build_one "$n"; done
