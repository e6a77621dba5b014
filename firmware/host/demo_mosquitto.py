#!/usr/bin/env python3
"""Drives the host agent by hand against a real mosquitto on loopback
(port 18831, started and stopped here): QoS 2 both ways, a PUBLISH left
without PUBREC (the broker is SIGSTOPped), drop, reboot (exit 75), restart
with the same store and resume the session (clean=0): the message is resent
with DUP=1 and reaches the observer once.
Usage: demo_mosquitto.py AGENT_BINARY WORKDIR   (make -C firmware/host demo)"""
import subprocess, threading, time, sys, os, signal, socket
AGENT, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
STORE = os.path.join(WORK, "demo-store.bin")
if os.path.exists(STORE): os.remove(STORE)
probe = socket.socket()
if probe.connect_ex(("127.0.0.1", 18831)) == 0:
    sys.exit("port 18831 is busy: stop whatever listens there first")
probe.close()
mosq_log = open(os.path.join(WORK, "demo-mosquitto.log"), "w")
mosq = subprocess.Popen(["mosquitto", "-v", "-p", "18831"], stdout=mosq_log, stderr=mosq_log)
time.sleep(0.5)
sub = subprocess.Popen(["mosquitto_sub", "-p", "18831", "-q", "2", "-v", "-t", "dut/out", "-t", "dut/status"],
                       stdout=subprocess.PIPE, text=True)
def sub_reader():
    for l in sub.stdout: print("   [observer mosquitto_sub] " + l.rstrip(), flush=True)
threading.Thread(target=sub_reader, daemon=True).start()
agent = None
def start():
    global agent
    agent = subprocess.Popen([AGENT, "--store", STORE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    def rd(p):
        for l in p.stdout: print("< " + l.rstrip(), flush=True)
        print("   [agent exited with %s]" % p.wait(), flush=True)
    threading.Thread(target=rd, args=(agent,), daemon=True).start()
def say(s, wait=0.4):
    print("> " + s, flush=True)
    agent.stdin.write(s + "\n"); agent.stdin.flush(); time.sleep(wait)
def note(s): print("   # " + s, flush=True)
start(); time.sleep(0.3)
say("connect id=dut-1 clean=1 keepalive=5 host=127.0.0.1 port=18831")
say("disconnect")
say("connect id=dut-1 clean=0 keepalive=5 host=127.0.0.1 port=18831 will_topic=dut/status will_payload=offline will_qos=1")
say("subscribe filter=dut/in qos=2")
note("mosquitto_pub -q 2 -t dut/in -m 'hello device'")
subprocess.run(["mosquitto_pub", "-p", "18831", "-q", "2", "-t", "dut/in", "-m", "hello device"]); time.sleep(0.4)
say("publish topic=dut/out qos=2 payload=first%20message")
brk = mosq.pid
note("SIGSTOP the broker: the next PUBLISH gets no PUBREC")
os.kill(brk, signal.SIGSTOP)
say("publish topic=dut/out qos=2 payload=sent%20while%20broker%20stalled")
say("status")
say("drop")
note("SIGCONT the broker")
os.kill(brk, signal.SIGCONT); time.sleep(0.3)
say("reboot", 0.6)
note("harness would restart the process now (exit 75); restarting with the same store")
start(); time.sleep(0.3)
say("connect id=dut-1 clean=0 keepalive=5 host=127.0.0.1 port=18831 will_topic=dut/status will_payload=offline%20again will_qos=1", 0.8)
say("status")
note("drop: the broker publishes the will to the observer")
say("drop", 0.8)
say("connect id=dut-1 clean=1 keepalive=5 host=127.0.0.1 port=18831")
say("disconnect")
agent.stdin.close(); time.sleep(0.3)
sub.terminate()
mosq.terminate(); mosq.wait()
print("   # broker log (the agent's side): " + mosq_log.name)
for l in open(mosq_log.name):
    if "dut-1" in l and ("PUBLISH" in l or "PUBREL" in l or "New client" in l):
        print("   [mosquitto] " + l.split(": ", 1)[1].rstrip())
