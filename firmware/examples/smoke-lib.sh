# Shared by the example smoke tests: a loopback echo listener standing in
# for the broker, and QEMU with the harness's network and flash options.
# Only 127.0.0.1 is ever contacted; the guest's network is restrict=on.
set -euo pipefail
command -v socat >/dev/null || { echo "smoke tests need socat (apt-get install socat)" >&2; exit 2; }
FW=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start_echo() {
    socat TCP-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork \
        SYSTEM:'read l; echo "echo: $l"' 2>/dev/null &
    PIDS+=($!)
    sleep 0.2
}

# start_qemu ELF FLASH: UART on $WORK/uart.out, input from fd 3, QMP socket.
start_qemu() {
    [ -p "$WORK/uart.in" ] || mkfifo "$WORK/uart.in"
    exec 3<>"$WORK/uart.in"
    qemu-system-xtensa -M lx60-nommu -cpu lx106 -nographic -monitor none \
        -chardev stdio,id=s0 -serial chardev:s0 \
        -qmp unix:"$WORK/qmp.sock",server=on,wait=off \
        -drive if=pflash,format=raw,file="$2" \
        -netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:1883-cmd:"socat - TCP:127.0.0.1:$PORT" \
        -net nic,netdev=n0,model=open_eth -kernel "$1" <&3 >>"$WORK/uart.out" 2>&1 &
    QEMU_PID=$!
    PIDS+=($QEMU_PID)
}

qmp() {
    printf '{"execute":"qmp_capabilities"}\n{"execute":"%s"}\n' "$1" |
        socat -t1 - UNIX-CONNECT:"$WORK/qmp.sock" >/dev/null
}

# wait_for PATTERN SECONDS: until the UART log has PATTERN (grep -E).
wait_for() {
    local deadline=$((SECONDS + $2))
    until grep -qE "$1" "$WORK/uart.out" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "FAIL: no '$1' within $2 s; UART log:" >&2
            cat "$WORK/uart.out" >&2
            exit 1
        fi
        sleep 0.1
    done
}
