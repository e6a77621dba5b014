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
# Every recipe names its Debian suite (SUITE=bookworm, SUITE=trixie) and its
# packages come from that suite only, through a private apt source list
# under the cache folder (never the system's lists, which are never read or
# changed): an image is the same whatever distribution the host runs. apt
# sees an empty dpkg status and no pinning, so nothing installed on the host
# changes which versions are taken.
#
# An image is rebuilt only when its recipe changes: the recipe's hash is in
# the image's `mqtt-hil.recipe` label and compared before anything is done.
#
# Usage: ci/images/build.sh [--force] [NAME...]   (default: every recipe)
#   NAME is a folder here, or a path to a recipe folder elsewhere.
# Environment: MQTT_HIL_DEBIAN_MIRROR (default http://deb.debian.org/debian)
# and MQTT_HIL_DEBIAN_SECURITY (default http://deb.debian.org/debian-security).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -f "$d/recipe" ] && names+=("$(basename "$d")"); done
fi
base="${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-hil"
debs="${MQTT_HIL_DEB_CACHE:-$base/debs}"
mirror="${MQTT_HIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${MQTT_HIL_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

fail() { echo "error: $*" >&2; exit 2; }
for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (the image recipes need apt and dpkg)"
done
[ -r "$keyring" ] || fail "$keyring is missing: install the package debian-archive-keyring (Debian and Ubuntu have it)"
command -v docker >/dev/null || fail "docker is not installed (Debian package docker.io)"
docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (is dockerd running? try: service docker start)"

# Never wanted inside a broker image: installers, init systems, interpreters
# that only maintainer scripts use, tools whose job a container does not have.
# A recipe that does need one of them (amqtt: Python) lists it in KEEP_RE.
EXCLUDE_RE='^(adduser|debconf|cdebconf|dpkg|install-info|lsb-base|passwd|sysvinit-utils|tar|procps|logrotate|socat|openssl|openssl-provider-legacy|python3.*|libpython3.*|perl|perl-base|perl-modules.*|libperl.*|systemd.*|libsystemd-shared|init-system-helpers|usrmerge|usr-is-merged|cron.*|anacron|bcron|runit-helper|sysuser-helper|opensysusers|mount|util-linux|libpam.*|mime-support|mailcap|media-types|readline-common|gcc-1[0-9]-base|libdebian-installer4|libnewt.*|libslang.*|libtextwrap1|sensible-utils|libsemanage.*|libsepol.*|libaudit.*|ucspi-unix|daemon|dmsetup|libdevmapper.*|libcryptsetup.*|libfdisk1|libkmod2|libapparmor1|libseccomp2|libip4tc2|libargon2-1|libjson-c5|sqv)$'
KEEP_RE='^$'

# apt, pointed at SUITE's private source list, lists and caches only.
APT=()
apt_for() {
  local suite="$1" dir="$base/apt/$1"
  mkdir -p "$dir/sources" "$dir/lists/partial" "$dir/cache/archives/partial"
  cat > "$dir/sources/debian.sources" <<EOF
# Written by ci/images/build.sh: Debian $suite for mqtt-hil's broker images.
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: $keyring

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: $keyring
EOF
  : > "$dir/status"
  APT=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/sources"
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
    -o "Dir::State::status=$dir/status" -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts=/dev/null -o APT::Sandbox::User=root
    -o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false)
  if ! ls "$dir/lists/"*"_dists_${suite}_main_binary-"*Packages* >/dev/null 2>&1; then
    apt_update "$suite"
  fi
}

apt_update() {
  echo "   apt-get update (Debian $1, private source list $base/apt/$1/sources)"
  apt-get "${APT[@]}" update -qq >/dev/null \
    || fail "apt-get update of Debian $1 failed (mirror $mirror; is the suite name right and the mirror reachable?)"
  ls "$base/apt/$1/lists/"*"_dists_${1}_main_binary-"*Packages* >/dev/null 2>&1 \
    || fail "Debian $1: the mirror $mirror has no package list for this suite (is the suite name right?)"
}

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
      [[ "$p" =~ $EXCLUDE_RE ]] && ! [[ "$p" =~ $KEEP_RE ]] && continue
      echo "$p"; todo+=("$p")
    done
    [ ${#todo[@]} -eq 0 ] && break
    # First choice of each alternative group; virtual packages skipped.
    mapfile -t next < <(
      apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts --no-breaks \
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

# The file `apt-get download` saves package $1's candidate version as
# (NAME_VERSION_ARCH.deb, an epoch's colon written %3a).
deb_file() {
  local f
  f=$(apt-cache "${APT[@]}" show --no-all-versions "$1" 2>/dev/null | awk '
    /^Package: /{p=$2} /^Version: /{v=$2} /^Architecture: /{a=$2}
    END { if (p != "") { gsub(/:/, "%3a", v); print p "_" v "_" a ".deb" } }')
  [ -n "$f" ] && echo "$f"
}

# Keeps, of the Erlang applications in DIR (a folder NAME-VERSION each), only
# APPS and what they need (the applications, included_applications and
# optional_applications of each ebin/NAME.app, followed to the end); every
# other folder is deleted. Applications not in DIR (Erlang/OTP's) are
# followed no further. Why: RabbitMQ puts every folder of its plugins
# directory on the code path and reads every plugin's .app at boot; with
# the 70 plugins Debian ships, that alone was half of a start's CPU.
keep_erlang_apps() {
  local dir="$1" a f d
  shift
  [ -d "$dir" ] || fail "keep_erlang_apps: no folder $dir"
  declare -A need=()
  local todo=("$@")
  while [ ${#todo[@]} -gt 0 ]; do
    a="${todo[0]}"; todo=("${todo[@]:1}")
    [ -n "${need[$a]:-}" ] && continue
    need[$a]=1
    f=""
    for f in "$dir/$a"-*/ebin/"$a".app; do break; done
    [ -f "$f" ] || continue
    # shellcheck disable=SC2207
    todo+=($(tr -d ' \n\t' < "$f" \
      | grep -o '{\(applications\|included_applications\|optional_applications\),\[[^]]*\]' \
      | sed 's/.*\[//; s/]$//' | tr ',' ' '))
  done
  for a in "$@"; do
    for f in "$dir/$a"-*/ebin/"$a".app; do [ -f "$f" ] || fail "keep_erlang_apps: $a is not in $dir"; break; done
  done
  for d in "$dir"/*/; do
    d="${d%/}"; a="$(basename "$d")"
    [ -n "${need[${a%-*}]:-}" ] || rm -rf "$d"
  done
}

# RabbitMQ's tenants: COUNT more MQTT listeners on ports FIRST.., each
# mapped to a virtual host of its own (t0, t1, ...; the plugin's
# `mqtt_port_to_vhost_mapping`), guest allowed on each. A vhost has its own
# queues (so sessions) and retained messages: the matrix runs one scenario
# per never-used vhost of a running node instead of booting a node per
# scenario (harness/src/broker/tenancy.rs). Adds the listeners to
# ROOT/etc/rabbitmq/rabbitmq.conf and writes the definitions the bake
# imports (start-rabbitmq bake) to ROOT/etc/rabbitmq/tenants.json.
rabbitmq_tenants() {
  local root="$1" first="$2" count="$3" i sep
  local conf="$root/etc/rabbitmq/rabbitmq.conf" defs="$root/etc/rabbitmq/tenants.json"
  [ -f "$conf" ] || fail "rabbitmq_tenants: no $conf"
  { echo "# Tenants (ci/images/build.sh, rabbitmq_tenants): port $first + N is vhost tN."
    for ((i = 0; i < count; i++)); do echo "mqtt.listeners.tcp.t$i = $((first + i))"; done
  } >> "$conf"
  {
    # guest and "/" too: on a first boot the import runs before the node
    # makes them (without them it stopped with `no_such_user guest`).
    printf '{"users": [{"name": "guest", "password": "guest", "tags": ["administrator"]}],\n'
    printf ' "vhosts": [{"name": "/"}'; sep=", "
    for ((i = 0; i < count; i++)); do printf '%s{"name": "t%d"}' "$sep" "$i"; done
    printf '],\n "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}'
    for ((i = 0; i < count; i++)); do
      printf '%s{"user": "guest", "vhost": "t%d", "configure": ".*", "write": ".*", "read": ".*"}' "$sep" "$i"; sep=", "
    done
    printf '],\n "global_parameters": [{"name": "mqtt_port_to_vhost_mapping", "value": {'; sep=""
    for ((i = 0; i < count; i++)); do printf '%s"%d": "t%d"' "$sep" "$((first + i))" "$i"; sep=", "; done
    printf '}}]}\n'
  } > "$defs"
}

# Boots the tree ROOT once as image TMP, in a container without network,
# and copies BAKE_KEEP's paths back into ROOT: what a broker writes on its
# first start (RabbitMQ: its node database) or what an interpreter would
# compile on every start (amqtt: Python's bytecode) is then in the image,
# and every container made from it starts from that same state, never from
# another container's. BAKE_RUN (a command, else the entrypoint) runs until
# it exits 0, or, with BAKE_READY, until its output has that line, then is
# stopped gracefully (SIGTERM) and must exit 0. No network: nothing can
# connect to the broker while it is baked, so no session, queue or retained
# message can be in what is kept.
bake() {
  local root="$1" tmp="$2" where="$3"
  shift 3
  local ctr="${tmp//[:\/]/-}-$$" rc
  # Run in a subshell (see the caller): this trap removes the container and
  # the bake's image however the subshell ends, `fail` included.
  # shellcheck disable=SC2064
  trap "docker rm -f '$ctr' >/dev/null 2>&1; docker rmi '$tmp' >/dev/null 2>&1" EXIT
  tar -C "$root" -c . | docker import "$@" - "$tmp" >/dev/null
  local run=(docker run -d --name "$ctr" --network none)
  if [ ${#BAKE_RUN[@]} -gt 0 ]; then
    run+=(--entrypoint "${BAKE_RUN[0]}" "$tmp" "${BAKE_RUN[@]:1}")
  else
    run+=("$tmp")
  fi
  "${run[@]}" >/dev/null || fail "$where: could not start the bake container"
  local t0=$SECONDS
  if [ -n "$BAKE_READY" ]; then
    until docker logs "$ctr" 2>&1 | grep -qF -- "$BAKE_READY"; do
      [ "$(docker inspect -f '{{.State.Running}}' "$ctr")" = true ] \
        || fail "$where: the bake stopped before printing '$BAKE_READY'; its last output:
$(docker logs --tail 30 "$ctr" 2>&1)"
      [ $((SECONDS - t0)) -lt 300 ] \
        || fail "$where: no '$BAKE_READY' within 300 s of the bake; its last output:
$(docker logs --tail 30 "$ctr" 2>&1)"
      sleep 0.5
    done
    docker stop -t 60 "$ctr" >/dev/null
  fi
  rc=$(docker wait "$ctr")
  [ "$rc" = 0 ] || fail "$where: the bake exited with status $rc; its last output:
$(docker logs --tail 30 "$ctr" 2>&1)"
  local p
  for p in "${BAKE_KEEP[@]}"; do
    mkdir -p "$root$(dirname "$p")"
    docker cp "$ctr:$p" - | tar -C "$root$(dirname "$p")" -x \
      || fail "$where: the bake left no $p"
  done
  echo "   baked in $((SECONDS - t0))s: ${BAKE_KEEP[*]}"
}

build_one() {
  local name="$1" dir
  case "$name" in
    */*) dir="$(cd "$name" && pwd)"; name="$(basename "$dir")" ;;
    *) dir="$here/$name" ;;
  esac
  local where="ci/images/$name/recipe"
  [[ "$dir" == "$here/"* ]] || where="$dir/recipe"
  [ -f "$dir/recipe" ] || fail "no recipe $where"
  # shellcheck source=/dev/null
  PACKAGES=(); ENTRYPOINT=""; EXPOSE=""; ENV=(); IMAGE=""; TAGS=(); SUITE=""; VERSION=""
  BAKE_RUN=(); BAKE_READY=""; BAKE_KEEP=()
  KEEP_RE='^$'; source "$dir/recipe"
  [ -n "$SUITE" ] || fail "$where names no Debian suite: add SUITE=bookworm (or trixie, ...)"
  [ -n "$IMAGE" ] && [ ${#PACKAGES[@]} -gt 0 ] || fail "$where must set IMAGE and PACKAGES"
  local hash
  hash=$(cd "$dir/.." && cat "$here/build.sh" $(find "$name" -type f | sort) | sha256sum | cut -c1-16)
  local have
  have=$(docker image inspect "$IMAGE" --format '{{ index .Config.Labels "mqtt-hil.recipe" }}' 2>/dev/null || true)
  if [ "$force" = 0 ] && [ "$have" = "$hash" ]; then
    echo "== $IMAGE is up to date (recipe $hash)"
    for t in "${TAGS[@]}"; do docker tag "$IMAGE" "$t"; done
    unset -f assemble
    return
  fi
  local t0=$SECONDS
  echo "== building $IMAGE from Debian $SUITE (recipe $hash)"
  apt_for "$SUITE"
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    apt-cache "${APT[@]}" show "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    # The lists may be old: refresh once before giving up.
    apt_update "$SUITE"
    missing=()
    for p in "${PACKAGES[@]}"; do
      apt-cache "${APT[@]}" show "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] || fail "$where: package ${missing[*]} is not in Debian $SUITE (mirror $mirror)"
  fi
  if [ -n "$VERSION" ]; then
    local v
    v=$(apt-cache "${APT[@]}" show --no-all-versions "${PACKAGES[0]}" | awk '/^Version: /{print $2; exit}')
    v="${v#*:}"
    [[ "$v" == "$VERSION" || "$v" == "$VERSION".* || "$v" == "$VERSION"-* || "$v" == "$VERSION"+* ]] \
      || fail "$where: Debian $SUITE has ${PACKAGES[0]} $v, not $VERSION (the image's tag would lie)"
  fi
  local pkgs
  mapfile -t pkgs < <(closure "${PACKAGES[@]}" | sort -u)
  echo "   ${#pkgs[@]} packages: ${pkgs[*]}"
  local cache="$debs/$SUITE"
  mkdir -p "$cache"
  # apt-get download fetches only what the cache lacks; each package's
  # file is the exact candidate version, so stale files are never taken.
  declare -A file=()
  local want=()
  for p in "${pkgs[@]}"; do
    file[$p]=$(deb_file "$p") || fail "$where: package $p (needed by ${PACKAGES[*]}) is not in Debian $SUITE"
    [ -f "$cache/${file[$p]}" ] || want+=("$p")
  done
  if [ ${#want[@]} -gt 0 ]; then
    # A stale package list names versions the mirror no longer has: refresh
    # it once and try again; then name what could not be fetched.
    if ! (cd "$cache" && apt-get "${APT[@]}" download -qq "${want[@]}") 2>/dev/null; then
      apt_update "$SUITE"
      for p in "${want[@]}"; do file[$p]=$(deb_file "$p") || true; done
      (cd "$cache" && apt-get "${APT[@]}" download -qq "${want[@]}") || true
    fi
    missing=()
    for p in "${want[@]}"; do
      [ -n "${file[$p]}" ] && [ -f "$cache/${file[$p]}" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] || fail "$where: could not fetch package ${missing[*]} from Debian $SUITE (mirror $mirror)"
  fi
  local root
  root=$(mktemp -d "${TMPDIR:-/tmp}/mqtt-hil-image.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  for p in "${pkgs[@]}"; do
    dpkg-deb -x "$cache/${file[$p]}" "$root"
  done
  # Debian 13's packages put everything under /usr and leave the /bin,
  # /lib, /lib64 and /sbin links to base-files (which a container does not
  # need): without /lib64 not even the dynamic loader is found.
  for d in bin sbin lib lib64; do
    [ -e "$root/$d" ] || [ -L "$root/$d" ] || ln -s "usr/$d" "$root/$d"
  done
  mkdir -p "$root"/{etc/ld.so.conf.d,tmp,data,var/run,var/log,var/lib} && chmod 1777 "$root/tmp"
  printf 'include /etc/ld.so.conf.d/*.conf\n' > "$root/etc/ld.so.conf"
  printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$root/etc/ld.so.conf.d/multiarch.conf"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
  printf 'Debian %s (ci/images/%s, recipe %s)\n' "$SUITE" "$name" "$hash" > "$root/etc/mqtt-hil-image"
  [ -d "$dir/files" ] && cp -a "$dir/files/." "$root/"
  if declare -F assemble >/dev/null; then assemble "$root"; unset -f assemble; fi
  ldconfig -r "$root" 2>/dev/null || true
  local changes=(--change "ENTRYPOINT $ENTRYPOINT" --change "LABEL mqtt-hil.suite=$SUITE")
  for p in $EXPOSE; do changes+=(--change "EXPOSE $p"); done
  for e in "${ENV[@]}"; do changes+=(--change "ENV $e"); done
  if [ ${#BAKE_KEEP[@]} -gt 0 ]; then
    # The bake's image has no recipe label: never taken for the real one.
    (bake "$root" "mqtt-hil-bake/$name:$hash" "$where" "${changes[@]}") || exit 2
  fi
  changes+=(--change "LABEL mqtt-hil.recipe=$hash")
  tar -C "$root" -c . | docker import "${changes[@]}" - "$IMAGE" >/dev/null
  for t in "${TAGS[@]}"; do docker tag "$IMAGE" "$t"; done
  echo "   $IMAGE${TAGS[*]:+ (also ${TAGS[*]})}: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}') in $((SECONDS - t0))s"
}

for n in "${names[@]}"; do build_one "$n"; done
