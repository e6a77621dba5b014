#!/usr/bin/env bash
# Power cuts in the middle of EEPROM commits: kill -9 QEMU at random
# moments of eeprom_stress's commit stream, boot again on the same flash
# file, and require the store to be exactly the last commit reported done
# or the one that was in flight. One QMP system_reset as well.
. "$(dirname "$0")/../smoke-lib.sh"
CUTS=${CUTS:-12}
cp "$FW/build/flash.bin" "$WORK/flash.bin"
# forge torn|leftovers: write into the flash file, at the end of the newest
# sector's log, a record torn between its header and its CRC, or bytes
# past the log end with the next header still erased.
forge() {
python3 - "$WORK/flash.bin" "$1" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
heads = []
for base in (0x3E0000, 0x3F0000):
    f.seek(base)
    magic, seq, size, _ = struct.unpack("<IIII", f.read(16))
    if magic == 0x4C454532:
        heads.append((seq, base, size))
seq, base, size = max(heads)
pos = 16 + (size + 3) // 4 * 4
while True:
    f.seek(base + pos)
    off, ln, s = struct.unpack("<HHI", f.read(8))
    if (off, ln, s) == (0xFFFF, 0xFFFF, 0xFFFFFFFF):
        break
    seq, pos = s, pos + 8 + (ln + 3) // 4 * 4 + 4
if sys.argv[2] == "torn":
    f.seek(base + pos)
    f.write(struct.pack("<HHI", 4, 10, seq + 1) + bytes(10))
else:
    f.seek(base + pos + 8)
    f.write(bytes(2048))
PY
}
# The commits this boot reported are consecutive: a reload (every 97th
# commit) that finds fewer in the store than were reported goes on from there.
consecutive() {
    done_lines | awk 'NR > 1 && $1 != p + 1 { bad = 1 } { p = $1 } END { exit bad }'
}
# Complete "c N" lines only: a kill can cut one short ("c 447" of "c 4479").
done_lines() { grep -aE $'^c [0-9]+\r$' "$WORK/uart.out" | tr -d '\r' | cut -d' ' -f2; }
last_done() { done_lines | tail -1; }
boot() {
    : > "$WORK/uart.out"
    start_qemu "$FW/build/eeprom_stress.elf" "$WORK/flash.bin"
    wait_for 'stress: boot n=[0-9]+ (ok|MISMATCH)' 10
    line=$(tr -d '\r' < "$WORK/uart.out" | grep -E '^stress: boot' | head -1)
    echo "$line" | grep -q ' ok$' || { echo "FAIL: $line" >&2; exit 1; }
    booted=$(echo "$line" | sed -E 's/.*n=([0-9]+).*/\1/')
}
boot
prev=0
for i in $(seq 1 "$CUTS"); do
    sleep "0.$((RANDOM % 9 + 1))"
    if [ "$i" -eq $((CUTS / 2)) ]; then
        # The board keeps committing until the reset lands: the last commit
        # done is the last one printed before the second boot line.
        qmp system_reset
        for _ in $(seq 100); do
            [ "$(tr -d '\r' < "$WORK/uart.out" | grep -c '^stress: boot')" -ge 2 ] && break
            sleep 0.1
        done
        done_n=$(tr -d '\r' < "$WORK/uart.out" |
            awk '/^stress: boot/ { b++ } b == 1 && /^c [0-9]+$/ { n = $2 } END { print n }')
        line=$(tr -d '\r' < "$WORK/uart.out" | grep -E '^stress: boot' | sed -n 2p)
        echo "$line" | grep -q ' ok$' || { echo "FAIL after reset: $line" >&2; exit 1; }
        booted=$(echo "$line" | sed -E 's/.*n=([0-9]+).*/\1/')
    else
        kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
        done_n=$(last_done)
        boot
    fi
    if [ -z "$done_n" ] || [ "$booted" -lt "$done_n" ] || [ "$booted" -gt $((done_n + 1)) ]; then
        echo "FAIL: cut $i: last commit done ${done_n:-none}, store holds $booted" >&2; exit 1
    fi
    grep -q MISMATCH "$WORK/uart.out" && { tr -d '\r' < "$WORK/uart.out" | grep MISMATCH >&2; exit 1; }
    echo "eeprom_stress: cut $i: done $done_n, store $booted"
    prev=$booted
done
# A record torn the way a cut between its header and its CRC leaves it:
# the store must still read as before, and later commits must not be
# appended after it.
kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
done_n=$(last_done)
forge torn
boot
[ "$booted" -ge "$done_n" ] && [ "$booted" -le $((done_n + 1)) ] ||
    { echo "FAIL: torn record: done $done_n, store $booted" >&2; exit 1; }
sleep 0.3
kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
done_n=$(last_done)
boot
[ "$booted" -ge "$done_n" ] && [ "$booted" -le $((done_n + 1)) ] && [ "$done_n" -gt "$prev" ] ||
    { echo "FAIL: after a torn record: done $done_n, store $booted" >&2; exit 1; }
echo "eeprom_stress: torn record ignored, commits go on after it (store $booted)"
# Bytes past the end of the log with its next header still erased, as a
# cut while programming a long record can leave them on a real chip: the
# log ends at the erased header, and later commits must not be programmed
# over those bytes (NOR only clears bits: the record would fail its CRC at
# the next boot and take every later commit with it). QEMU's pflash
# overwrites rather than clears bits, but flash_write skips words that
# would be programmed to 0xffff, so zeros there show it here too.
kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
prev=$(last_done)
forge leftovers
boot
[ "$booted" -ge "$prev" ] && [ "$booted" -le $((prev + 1)) ] ||
    { echo "FAIL: leftovers: done $prev, store $booted" >&2; exit 1; }
sleep 0.3
kill -9 "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true
consecutive || { echo "FAIL: after leftovers past the log end, a reload lost commits" >&2; exit 1; }
done_n=$(last_done)
boot
[ "$booted" -ge "$done_n" ] && [ "$booted" -le $((done_n + 1)) ] && [ "$done_n" -gt "$prev" ] ||
    { echo "FAIL: after leftovers past the log end: done $done_n, store $booted" >&2; exit 1; }
echo "eeprom_stress: leftovers past the log end never written over (store $booted)"
[ "$prev" -gt 2000 ] || { echo "FAIL: only $prev commits, too few to roll the log over" >&2; exit 1; }
echo "eeprom_stress: PASS ($CUTS power cuts/resets in a stream of $prev commits, a torn record, leftovers past the log end; store always the last or in-flight commit)"
