#!/usr/bin/env python3
"""What one fresh broker container costs to get ready, per image.

Usage: ci/images/start-cost.py [-n RUNS] IMAGE [IMAGE...]

For each run: `docker run -d` (MQTT port published on 127.0.0.1), then the
harness's readiness probe (harness/src/broker/probe.rs: an MQTT 3.1.1
CONNECT, clean session, until a CONNACK accepts it; retried every 20 ms),
then the container is removed. Prints per image the median (min..max) of
the wall time from `docker run` to that CONNACK, the CPU time the
container's cgroup used until then, and the CPU it used in the 3 s after
(an idle broker's cost), with the load average. The machine may be shared:
CPU seconds are the robust figure, wall time follows the load.
"""
import argparse, os, socket, statistics, subprocess, sys, time


def connack(port, timeout=2.0):
    cid = f"mqtt-hil-probe-{os.getpid()}-{time.monotonic_ns() % 100000}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(cid).to_bytes(2, "big") + cid
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(bytes([0x10, len(body)]) + body)
            ack = b""
            while len(ack) < 4:
                d = s.recv(4 - len(ack))
                if not d:
                    return False
                ack += d
            s.sendall(b"\xe0\x00")
            return ack[0] == 0x20 and ack[1] == 2 and ack[3] == 0
    except OSError:
        return False


def cpu_seconds(cid):
    """The container cgroup's CPU time: cgroup v1 (cgroupfs or systemd
    driver) or v2."""
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e9),
        (f"/sys/fs/cgroup/cpuacct/system.slice/docker-{cid}.scope/cpuacct.usage", 1e9),
        (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e6),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e6),
    ):
        try:
            text = open(path).read()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            text = next(l.split()[1] for l in text.splitlines() if l.startswith("usage_usec"))
        return int(text) / scale
    sys.exit(f"no cgroup CPU accounting found for container {cid[:12]}")


def one(image):
    t0 = time.monotonic()
    cid = subprocess.check_output(
        ["docker", "run", "-d", "--label", "mqtt-hil=1", "-p", "127.0.0.1::1883", image],
        text=True).strip()
    try:
        port = int(subprocess.check_output(["docker", "port", cid, "1883/tcp"],
                                           text=True).split(":")[-1])
        while not connack(port):
            if time.monotonic() - t0 > 120:
                logs = subprocess.run(["docker", "logs", "--tail", "20", cid],
                                      capture_output=True, text=True)
                sys.exit(f"{image}: no CONNACK within 120 s; its last output:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.02)
        wall = time.monotonic() - t0
        ready = cpu_seconds(cid)
        time.sleep(3)
        return wall, ready, cpu_seconds(cid) - ready
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5, help="starts per image (default 5)")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    for image in a.images:
        rows = [one(image) for _ in range(a.n)]
        def col(i):
            v = [r[i] for r in rows]
            return f"{statistics.median(v):6.2f} s ({min(v):.2f}..{max(v):.2f})"
        load = " ".join(open("/proc/loadavg").read().split()[:3])
        print(f"{image:28} n={a.n}  ready: wall {col(0)}  CPU {col(1)}  then idle 3 s: CPU {col(2)}  load {load}",
              flush=True)


main()
