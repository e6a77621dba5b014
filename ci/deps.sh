#!/usr/bin/env bash
# Installs the Debian packages mqtt-hil needs, only those that are missing,
# so `make` works on a fresh Debian machine and costs nothing the second time.
# Usage: ci/deps.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# Parallel make jobs and test helpers may install at the same time: take turns.
exec 9>"${TMPDIR:-/tmp}/mqtt-hil-apt.lock"
flock 9
missing=($(for p in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
done))
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Another installer on the machine (unattended-upgrades on a fresh one) may
# hold dpkg's lock: wait for it rather than fail.
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
