#!/usr/bin/env bash
# Boot counter in EEPROM across: QMP system_reset, ESP.restart() from the
# sketch, and kill -9 of QEMU (power cut) with the same flash file; the
# network must work again after each.
. "$(dirname "$0")/../smoke-lib.sh"
start_echo
cp "$FW/build/flash.bin" "$WORK/flash.bin"
start_qemu "$FW/build/persist_smoke.elf" "$WORK/flash.bin"
wait_for 'ready boot=1 ' 10
qmp system_reset
wait_for 'ready boot=2 ' 10
echo reboot >&3
wait_for 'ready boot=3 ' 10
kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
start_qemu "$FW/build/persist_smoke.elf" "$WORK/flash.bin"
wait_for 'ready boot=4 ' 10
[ "$(grep -c 'tcp reply echo: boot ping' "$WORK/uart.out")" -eq 4 ] || { cat "$WORK/uart.out"; exit 1; }
tr -d '\r' < "$WORK/uart.out" | grep -E '^persist:'
echo "persist_smoke: PASS (QMP reset, ESP.restart, power cut; EEPROM and network survive)"
