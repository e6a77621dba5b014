# mqtt-hil: the only commands a newcomer needs.
#   make demo   build everything, run the scenario suite, print the verdicts
#   make test   run every test
# Both install what they need (Debian packages via apt-get, crates via cargo).

SHELL := /bin/bash
CARGO ?= cargo
OUT ?= out
BROKER ?= mosquitto
TARGET ?= virtual
# Two cores: keep builds and test runs sized for that.
JOBS ?= 2

HOST_DEPS := mosquitto mosquitto-clients pkg-config

.PHONY: all deps build demo test test-rust lint fmt bench ci clean

all: build

deps:
	@ci/deps.sh $(HOST_DEPS)
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust (rustup) first" >&2; exit 2; }

build: deps
	$(CARGO) build --release --locked -j $(JOBS) --bin mqtt-hil

demo: build
	@echo "== scenario suite: broker=$(BROKER) target=$(TARGET)"
	./target/release/mqtt-hil run scenarios --broker $(BROKER) --target $(TARGET) \
	    --out $(OUT) --junit $(OUT)/junit.xml; \
	status=$$?; echo "report: $(OUT)/junit.xml, traces in $(OUT)/traces/"; exit $$status

test: deps test-rust

test-rust:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	    $(CARGO) nextest run --locked -j $(JOBS) --no-fail-fast; \
	else \
	    $(CARGO) test --locked -j $(JOBS) --no-fail-fast; \
	fi

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: deps
	$(CARGO) bench --locked -j $(JOBS)

ci: lint test

clean:
	$(CARGO) clean
	rm -rf $(OUT)
