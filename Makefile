# mqtt-hil: the only commands a newcomer needs.
#   make demo   build everything, run the scenario suite, print the verdicts
#   make test   run every test
# Both install what they need (Debian packages via apt-get, crates via cargo).

SHELL := /bin/bash
CARGO ?= cargo
OUT ?= out
BROKER ?= mosquitto
TARGET ?= qemu
# Two cores: keep builds and test runs sized for that.
JOBS ?= 2

HOST_DEPS := mosquitto mosquitto-clients pkg-config libudev-dev gcc make clang libclang-rt-14-dev
# Only the tests need these: the HTML report is opened in a real headless
# browser, the pcaps are decoded by Wireshark's dissectors.
TEST_DEPS := chromium tshark
BUGS := $(shell cat firmware/agent/bugs.txt)

.PHONY: all deps test-deps build firmware images test-images build-images matrix demo black-box device-suite test test-prepare test-build test-rust test-firmware test-serial-suite esptool amqtt fuzz lint fmt bench ci clean

all: build

deps:
	@ci/deps.sh $(HOST_DEPS)
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust (rustup) first" >&2; exit 2; }

test-deps:
	@ci/deps.sh $(TEST_DEPS)

build: deps
	$(CARGO) build --release --locked -j $(JOBS) --bin mqtt-hil

# The emulated board's images (agent.elf and one per seeded bug; the
# firmware Makefile installs the xtensa toolchain and fetches lwIP itself)
# and the host build of the same agent, with one binary per seeded bug.
firmware: deps
	$(MAKE) -C firmware -j $(JOBS)
	$(MAKE) -C firmware/host agent
	@for b in $(BUGS); do $(MAKE) -s -C firmware/host bug-agent BUG=$$b || exit 1; done

demo: build firmware
	@echo "== scenario suite: broker=$(BROKER) target=$(TARGET)"
	./target/release/mqtt-hil run scenarios --broker $(BROKER) --target $(TARGET) \
	    --out $(OUT) --junit $(OUT)/junit.xml --report $(OUT)/report --pcap $(OUT)/pcap; \
	status=$$?; echo "open $(OUT)/report/index.html; JUnit $(OUT)/junit.xml, pcaps in $(OUT)/pcap/, traces in $(OUT)/traces/"; exit $$status

# Black-box scenarios: a device running its own firmware (no test agent),
# judged from its traffic alone. DEVICE_FW is any ELF for the emulated board
# or an Arduino sketch folder (built first, cached); the default is the
# example counter device (firmware/sketches/counter_device).
DEVICE_FW ?= firmware/sketches/counter_device
DEVICE ?= $(DEVICE_FW)/device.toml
black-box: build firmware
	@echo "== black-box scenarios: broker=$(BROKER) firmware=$(DEVICE_FW)"
	./target/release/mqtt-hil run scenarios/black_box --broker $(BROKER) --target qemu \
	    --firmware $(DEVICE_FW) --out $(OUT)/black_box --junit $(OUT)/black_box/junit.xml

# The generic device suite for any device: DEVICE is its description
# (scenarios/device/README.md), DEVICE_FW its sketch folder or ELF.
device-suite: build firmware
	@echo "== device suite: broker=$(BROKER) device=$(DEVICE) firmware=$(DEVICE_FW)"
	./target/release/mqtt-hil run scenarios/device --device $(DEVICE) --broker $(BROKER) --target qemu \
	    --firmware $(DEVICE_FW) --libraries firmware/libraries --out $(OUT)/device --junit $(OUT)/device/junit.xml

# Cold, the test build takes most of both cores for minutes while the rest
# of the set-up mostly downloads (Debian packages, broker images, PyPI):
# they run side by side (their lines interleave), then the tests.
test: deps
	@$(MAKE) --no-print-directory -j 6 test-prepare
	@$(MAKE) --no-print-directory test-firmware test-rust

test-prepare: firmware esptool amqtt test-images test-deps test-build

# The same build `nextest run` (or `cargo test`) starts with.
test-build:
	$(CARGO) test --locked -j $(JOBS) --no-run

# Broker images for the container backend and the conformance matrix, built
# locally from Debian packages (ci/images/README.md), each from the Debian
# suite its recipe names through a private apt source list; skipped when an
# image with the same recipe exists. Without a Docker engine this says so
# and goes on, unless MQTT_HIL_REQUIRE_DOCKER=1 (CI), where it fails.
# `make images` builds every recipe (make matrix runs them all); make test
# builds only the images its tests use (TEST_IMAGES): all but RabbitMQ 4.0
# (91 MB, ~45 s to build, ~10 s to start per cell), which no test of make
# test runs.
TEST_IMAGES ?= mosquitto nats rabbitmq amqtt mosquitto-2.0.21 nats-2.10
images:
	@$(MAKE) -s build-images IMAGES=

test-images:
	@$(MAKE) -s build-images IMAGES="$(TEST_IMAGES)"

build-images:
	@if docker info >/dev/null 2>&1; then ci/deps.sh debian-archive-keyring python3 python3-venv && ci/images/build.sh $(IMAGES); \
	elif [ "$${MQTT_HIL_REQUIRE_DOCKER:-0}" = 1 ]; then \
	    echo "error: MQTT_HIL_REQUIRE_DOCKER=1 but the Docker engine does not answer" >&2; exit 2; \
	else echo "images: no Docker engine here; container tests will report themselves skipped"; fi

# The agent's portable core on the host, under ASan and UBSan, every seeded
# bug caught by its guard test; then a short fuzz of both parsers.
test-firmware: firmware
	$(MAKE) -C firmware/host test
	$(MAKE) -C firmware/host fuzz FUZZ_RUNS=$(FUZZ_RUNS)

FUZZ_RUNS ?= 100000

# Tests run four per CPU (nextest -j is test threads; builds keep JOBS).
# A test mostly waits on protocol timers, a board or a container: measured
# on a quiet 2-core machine (2026-12-07, a fresh clone of 0524bf3, warm),
# `make test-rust` at -j 4 took 390.7 s and at -j 8 214.6 s, 989 of 989
# each, the tests' summed time 1534 s and 1602 s (each barely slower), the
# processes nextest waits for using 54 % and 93 % of one CPU: even at -j 8
# the machine is half idle. Earlier, at -j 2, 790 s. `make test-rust
# TEST_JOBS=2` runs one per CPU.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) * 4 )))
test-rust: test-deps
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	    $(CARGO) nextest run --locked --build-jobs $(JOBS) -j $(TEST_JOBS) --no-fail-fast; \
	else \
	    $(CARGO) test --locked -j $(JOBS) --no-fail-fast; \
	fi

# esptool (PyPI) for `mqtt-hil flash`, in a venv of Debian's python3: the
# flash tests drive it against the emulated board's ROM loader.
ESPTOOL_VERSION ?= 5.6.0
esptool: .cache/esptool/bin/esptool
.cache/esptool/bin/esptool:
	@ci/deps.sh python3 python3-venv
	/usr/bin/python3 -m venv .cache/esptool
	.cache/esptool/bin/pip install -q --disable-pip-version-check esptool==$(ESPTOOL_VERSION)
	@.cache/esptool/bin/esptool version

# amqtt (PyPI), a second broker that the harness knows nothing built-in
# about: the external-broker tests run it as `--broker external:HOST:PORT`
# with and without a profile (scenarios/deviations/amqtt.toml).
# The amqtt image (ci/images/amqtt/requirements.txt) pins the same version.
AMQTT_VERSION ?= 0.12.1
amqtt: .cache/amqtt/bin/amqtt
.cache/amqtt/bin/amqtt:
	@ci/deps.sh python3 python3-venv
	/usr/bin/python3 -m venv .cache/amqtt
	.cache/amqtt/bin/pip install -q --disable-pip-version-check amqtt==$(AMQTT_VERSION)
	@.cache/amqtt/bin/amqtt --version

# The whole scenario suite through the serial target on the emulated board's
# pty (make test runs a subset of it; this takes ~1.5 min more).
test-serial-suite: deps firmware
	MQTT_HIL_SERIAL_SUITE=full $(CARGO) nextest run --locked -j $(JOBS) --test it -E 'test(/^serial_bench::/)'

# Fuzzing of the harness's input parsers (fuzz/, its own workspace: the
# scenario and device-description loaders, the MQTT codec, the agent's line
# parser, SLIP and the emulated ROM loader), FUZZ_EXECS executions per
# target, one core, seeds from the repository's real files (fuzz/seeds.sh).
# Installs the nightly toolchain and cargo-fuzz when missing. Debug
# assertions on (an overflow is a crash, as in the test build); no
# sanitizer: these parsers are safe Rust. A crash stops with the input in
# fuzz/artifacts/TARGET/ and the log in fuzz/logs/TARGET.log.
FUZZ_EXECS ?= 10000000
FUZZ_TARGETS ?= scenario device codec agent_line rom
FUZZ_FLAGS := -a -s none
fuzz:
	@command -v rustup >/dev/null || { echo "error: make fuzz needs rustup for a nightly toolchain (https://rustup.rs)" >&2; exit 2; }
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@fuzz/seeds.sh
	cd fuzz && CARGO_BUILD_JOBS=$(JOBS) rustup run nightly cargo fuzz build $(FUZZ_FLAGS)
	@mkdir -p fuzz/logs
	@for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz $$t: $(FUZZ_EXECS) executions"; mkdir -p fuzz/corpus/$$t; \
	    if ! (cd fuzz && rustup run nightly cargo fuzz run $(FUZZ_FLAGS) $$t corpus/$$t seeds/$$t -- \
	          -runs=$(FUZZ_EXECS) -timeout=10 -print_final_stats=1) >fuzz/logs/$$t.log 2>&1; then \
	        tail -n 40 fuzz/logs/$$t.log; echo "fuzz $$t: CRASH (log fuzz/logs/$$t.log)" >&2; exit 1; fi; \
	    grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec))' fuzz/logs/$$t.log | tr '\n' ' '; echo; \
	done

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: deps firmware esptool images
	$(CARGO) bench --locked -j $(JOBS)
	CARGO=$(CARGO) JOBS=$(JOBS) ci/signal-soak.sh

# The whole conformance matrix: every scenario (with the container-only,
# the slow and the MQTT 5.0 ones; 5.0 runs are SKIP on brokers without 5.0)
# against every broker this machine can run, at the runner's default -j
# (measured wall time in README.md, "Brokers and the conformance matrix").
# Table in the terminal, $(OUT)/matrix/matrix.md and matrix.json, an HTML
# index in $(OUT)/matrix/report/.
matrix: build images
	./target/release/mqtt-hil matrix scenarios scenarios/containers scenarios/slow scenarios/v5 --out $(OUT)/matrix \
	    --junit $(OUT)/matrix/junit.xml --report $(OUT)/matrix/report

ci: lint test

clean:
	$(CARGO) clean
	rm -rf $(OUT)
