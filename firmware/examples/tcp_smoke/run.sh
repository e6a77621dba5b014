#!/usr/bin/env bash
# DHCP, then two TCP connections through guestfwd cmd: (the reconnect case).
. "$(dirname "$0")/../smoke-lib.sh"
start_echo
cp "$FW/build/flash.bin" "$WORK/flash.bin"
t0=$(date +%s%N)
start_qemu "$FW/build/tcp_smoke.elf" "$WORK/flash.bin"
wait_for 'smoke: (DONE|FAIL)' 20
grep -q 'smoke: DONE' "$WORK/uart.out" || { cat "$WORK/uart.out"; exit 1; }
tr -d '\r' < "$WORK/uart.out" | grep -E '^(\[board\]|smoke:)'
echo "tcp_smoke: PASS in $(( ($(date +%s%N) - t0) / 1000000 )) ms (QEMU start to second reply)"
