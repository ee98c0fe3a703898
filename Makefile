# The README's commands. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test lint fmt bench sim api-fuzz clean-tools

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Run the whole platform on embedded defaults (SQLite, in-process bus, simulator broker)
	$(CARGO) run -p jt -- dev

test: ## Run every test; starts NATS 2.15 and PostgreSQL itself when NATS_URL/DATABASE_URL are unset (the dashboard's browser tests need node 20+ and Chromium)
	scripts/test-services -- $(CARGO) test --workspace --no-fail-fast

lint: ## Formatting check, clippy with warnings as errors, and the crate layers (scripts/check-layers)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/check-layers --self-test
	scripts/check-layers

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Run every benchmark (release; `[[bench]] harness = false` targets); record results in docs/benchmarks.md
	scripts/test-services -- $(CARGO) bench --workspace

api-fuzz: ## The API's property-based test at length (Schemathesis, 200 examples per operation; make test runs 8)
	JT_API_FUZZ_EXAMPLES=200 scripts/test-services --only postgres -- $(CARGO) test -p jt-api --test schema_fuzz -- --nocapture

sim: ## Run the exchange simulator on its own (JT_SIM_ADDR, default 127.0.0.1:8081)
	$(CARGO) run -p jt -- sim

clean-tools: ## Remove the test servers installed under .tools/ and the browser tests' playwright-core
	rm -rf .tools tests/browser/node_modules
