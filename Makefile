# The README's commands. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test lint deny fmt bench bench-full chaos sim api-fuzz fuzz fuzz-smoke image image-test clean-tools

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Run the whole platform on embedded defaults (SQLite, in-process bus, simulator broker)
	$(CARGO) run -p jt -- dev

test: ## Run every test; starts NATS 2.15 and PostgreSQL itself when NATS_URL/DATABASE_URL are unset (the dashboard's browser tests need node 20+ and Chromium)
	scripts/test-services -- $(CARGO) test --workspace --no-fail-fast

lint: ## Formatting check, clippy with warnings as errors, the crate layers (scripts/check-layers), cargo deny
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/check-layers --self-test
	scripts/check-layers
	scripts/deny

deny: ## Supply chain: licences, banned and duplicate crates, sources (deny.toml; installs cargo-deny on first use)
	scripts/deny

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Run every benchmark (release; `[[bench]] harness = false` targets: pipeline, copy, risk, …); record results in docs/benchmarks.md
	scripts/test-services -- $(CARGO) bench --workspace

bench-full: ## The copy and risk benchmarks at full size: 100 leader fills to 20 and 200 followers, 500 ticks over 500 accounts (make bench runs 20 fills and 50 ticks)
	JT_BENCH_FILLS=100 JT_BENCH_TICKS=500 scripts/test-services -- $(CARGO) bench --workspace --bench copy --bench risk

chaos: ## The chaos suite at full size: 200 alerts × 20 accounts, 5 copy followers, each service killed -9, NATS down 35 s, PostgreSQL restarted (docs/reliability.md; make test runs 20 × 4)
	# The harness is here only to install the pinned nats-server: the test starts its own
	# nats-server and PostgreSQL, which it restarts.
	JT_CHAOS_SIGNALS=200 JT_CHAOS_ACCOUNTS=20 JT_CHAOS_FOLLOWERS=5 JT_CHAOS_GAP_MS=150 JT_CHAOS_NATS_DOWN_SECS=35 JT_CHAOS_DRAIN_SECS=1800 \
		scripts/test-services --only nats -- $(CARGO) test -p jt --test chaos -- --nocapture

api-fuzz: ## The API's property-based test at length (Schemathesis, 200 examples per operation; make test runs 8)
	JT_API_FUZZ_EXAMPLES=200 scripts/test-services --only postgres -- $(CARGO) test -p jt-api --test schema_fuzz -- --nocapture

FUZZ_SECONDS ?= 300
fuzz: ## Fuzz the alert parser, the Tradovate frame codec and the SignalR codec, FUZZ_SECONDS (300) each (cargo fuzz)
	scripts/fuzz $(FUZZ_SECONDS)

fuzz-smoke: ## Each fuzz target for 20 s (CI)
	scripts/fuzz 20

sim: ## Run the exchange simulator on its own (JT_SIM_ADDR, default 127.0.0.1:8081)
	$(CARGO) run -p jt -- sim

# The image (docs/operations.md, "Image"): a release build, its root filesystem, `podman build`.
IMAGE ?= localhost/jt
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

image: ## Build the container image localhost/jt:<version> (IMAGE=… renames; release build + podman; not in make test)
	JT_GIT_SHA=$(GIT_SHA) $(CARGO) build --release -p jt
	scripts/image-rootfs $(TARGET_DIR)/release/jt target/image
	podman build -f Containerfile -t $(IMAGE):$(VERSION) -t $(IMAGE):latest target/image

image-test: image ## Build the image, then run its jt from the exported filesystem (--version, db migrate/status)
	scripts/test-services --only postgres -- scripts/image-test $(IMAGE):$(VERSION)

clean-tools: ## Remove the test servers installed under .tools/ and the browser tests' playwright-core
	rm -rf .tools tests/browser/node_modules
