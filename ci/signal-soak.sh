#!/usr/bin/env bash
# Signals at random moments, many times: harness/tests/signals.rs with
# TRIALS trials per target (default 100: QEMU board, container broker),
# SIGINT/SIGTERM/SIGHUP in turn. Prints the leak count per target (target
# 0: no process, container or network of a run left behind); exits 1 if
# any trial left something or failed. `make bench` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-100}
SEED=${SEED:-$(date +%s)}
echo "signal soak: $TRIALS trials per target, seed $SEED (SEED=$SEED to repeat)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
MQTT_HIL_SIGNAL_TRIALS=$TRIALS MQTT_HIL_SIGNAL_SEED=$SEED \
    ${CARGO:-cargo} test --locked -j "${JOBS:-2}" -p mqtt-hil --test it -- signals:: \
    --test-threads 1 --nocapture >"$log" 2>&1 || status=$?
grep -oE 'signal soak .*|trial .* left:.*|panicked.*|test result.*' "$log" || tail -20 "$log"
exit "$status"
