#!/usr/bin/env bash
# Seeds for the fuzz targets, from the repository's real files and frames,
# written to fuzz/seeds/<target>/ (regenerated on every `make fuzz`, not
# committed). Usage: fuzz/seeds.sh (from anywhere).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/seeds
rm -rf "$out"
mkdir -p "$out"/{scenario,device,codec,agent_line,rom}

# Loaders: every scenario and device description as it is, and with CRLF
# endings (the CRLF copies start the fuzzer on the line-ending paths).
n=0
copy() { # dir file
    n=$((n + 1))
    cp "$2" "$1/$n.toml"
    sed 's/$/\r/' "$2" > "$1/$n.crlf.toml"
}
while IFS= read -r f; do copy "$out/scenario" "$f"; done \
    < <(find "$root/scenarios" "$root/harness/tests/fixtures/cli" -name '*.toml' | sort)
while IFS= read -r f; do copy "$out/device" "$f"; done \
    < <(find "$root/firmware/sketches" -name device.toml | sort)

# Codec: recorded connections (harness/tests/fixtures/codec, one frame a
# line in hex), each whole stream and each frame, behind the target's
# selector byte (version = byte % 3; 0 = 3.1, 1 = 3.1.1, 2 = 5.0).
for f in "$root"/harness/tests/fixtures/codec/*.hex; do
    b=$(basename "$f" .hex)
    case $b in v31-*) v=00 ;; v5-* | *mqttv50*) v=02 ;; *) v=01 ;; esac
    { printf '%s' "$v"; tr -d '\n' < "$f"; } | xxd -r -p > "$out/codec/$b"
    i=0
    while IFS= read -r line; do
        i=$((i + 1))
        printf '%s%s' "$v" "$line" | xxd -r -p > "$out/codec/$b.$i"
    done < "$f"
done

# Agent lines: the device lines the tests and the agent's own test suite
# record, and the host-to-agent lines of the agent's C fuzz seeds.
grep -ohE '"@[^"]*' "$root"/harness/src/agent/*.rs "$root"/harness/src/target/serial/*.rs \
    "$root"/firmware/host/tests/test_agent.c | cut -c2- | sort -u > "$out/agent_line/all"
i=0
while IFS= read -r line; do
    i=$((i + 1))
    printf '%s\n' "$line" > "$out/agent_line/$i"
done < "$out/agent_line/all"
cp "$root"/firmware/host/fuzz/seeds-line/* "$out/agent_line/"

# ROM loader: what esptool sends to the ESP8266 ROM (SYNC, chip detect,
# FLASH_BEGIN, two FLASH_DATA blocks, FLASH_END), as raw SLIP on the UART
# (selector 0x00 + boot noise) and as the target's request records
# (selector 0x80).
python3 - "$out/rom" <<'PY'
import struct, sys
out = sys.argv[1]
def slip(p):
    return b"\xc0" + p.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"
def chk(d):
    c = 0xEF
    for b in d:
        c ^= b
    return c
block = bytes(range(256)) * 4
reqs = [
    (0x08, b"\x07\x07\x12\x20" + b"\x55" * 32, 0),
    (0x0A, struct.pack("<I", 0x60000078), 0),
    (0x0A, struct.pack("<I", 0x3FF00050), 0),
    (0x09, struct.pack("<IIII", 0x60000224, 0x9F, 0xFFFFFFFF, 0), 0),
    (0x09, struct.pack("<IIII", 0x60000200, 1 << 18, 0xFFFFFFFF, 0), 0),
    (0x0A, struct.pack("<I", 0x60000240), 0),
    (0x02, struct.pack("<IIII", 0x800, 2, 0x400, 0x1000), 0),
    (0x03, struct.pack("<IIII", len(block), 0, 0, 0) + block, chk(block)),
    (0x03, struct.pack("<IIII", len(block), 1, 0, 0) + block, chk(block)),
    (0x05, struct.pack("<IIII", 0x100, 1, 0x100, 0x40100000), 0),
    (0x07, struct.pack("<IIII", 16, 0, 0, 0) + b"\x01" * 16, chk(b"\x01" * 16)),
    (0x06, struct.pack("<II", 1, 0), 0),
    (0x04, struct.pack("<I", 1), 0),
]
wire = b"ets Jan  8 2013,rst cause:2, boot mode:(1,7)\r\n"
for op, data, c in reqs:
    wire += slip(struct.pack("<BBHI", 0, op, len(data), c) + data)
open(f"{out}/esptool", "wb").write(b"\x00" + wire)
open(f"{out}/esptool.chunked", "wb").write(b"\x06" + wire)
ops = {0x02: 0, 0x03: 1, 0x04: 2, 0x05: 3, 0x06: 4, 0x07: 5, 0x08: 6, 0x09: 7, 0x0A: 8}
rec = b"\x80"
for op, data, _ in reqs:
    data = data[:510]
    if len(data) % 2:
        data += b"\x00"
    rec += bytes([ops[op], len(data) // 2]) + data
open(f"{out}/requests", "wb").write(rec)
PY
echo "seeds: $(find "$out" -type f | wc -l) files in $out"
