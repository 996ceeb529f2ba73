# The verbs people expect; the README explains each.
.PHONY: run test verify lint sam build validate smoke bench deploy repeat fuzz faults

run:    ## serve everything locally on the emulated stack
	infra/run.sh

test:   ## every test: lint, unit, handler, system, infra, browser, smoke, schemathesis, log scan
	infra/test.sh

# make verify [SCHEMATHESIS_MAX_TIME=600] [SEED=n]: schemathesis against
# openapi.yaml on a stack of its own, for longer than `make test` runs it
# (RELIABILITY.md, Schemathesis). Not in CI.
verify:
	infra/verify.sh

# make repeat [RUNS=20]: the system suite RUNS times in a row on one stack with
# both cores kept busy, to catch tests that fail on a slow machine (not in CI).
repeat:
	infra/repeat-system-tests.sh $(or $(RUNS),20)

# make faults [FAULT_OPS=1000] [FAULT_SEED=20261207]: the injected-faults run at
# full length on a stack of its own (CI runs it with 60 operations).
faults:
	infra/faults.sh $(or $(FAULT_OPS),1000) $(or $(FAULT_SEED),20261207)

# make fuzz [FUZZ_SECONDS=120 | FUZZ_RUNS=10000000] [TARGETS="connect_form ..."]:
# each parser of untrusted bytes under libFuzzer for FUZZ_SECONDS, or until it
# has run FUZZ_RUNS inputs (cargo-fuzz, installed by the script); prints
# executions and crashes per target. CI replays the kept corpus only.
fuzz:
	infra/fuzz.sh $(or $(FUZZ_SECONDS),120) $(TARGETS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

FUNCTIONS := $(notdir $(wildcard functions/*))

# The AWS SAM CLI lives in its own venv (large; never needed by `make test`).
PYTHON   ?= python3
SAM_VENV := .local/sam-venv
# No telemetry: nothing but package registries is reachable from CI machines.
SAM      := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
ARCH     ?= x86_64
# `sam build` and `sam validate` need a region, not credentials; deploying
# uses your AWS configuration's region.
REGION   ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)

sam: $(SAM_VENV)/.installed  ## install the pinned SAM CLI into .local/sam-venv

$(SAM_VENV)/.installed: infra/sam-requirements.txt
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/sam-requirements.txt
	$(SAM_VENV)/bin/sam --version
	touch $@

# cargo-lambda from .local/venv (infra/install.sh); a target dir of its own, so
# the release build never waits for the dev build's lock (and keeps its output).
SAM_ENV = PATH="$(CURDIR)/.local/venv/bin:$(CURDIR)/$(SAM_VENV)/bin:$$PATH" \
  CARGO_TARGET_DIR="$(CURDIR)/target/lambda-build"
NEED_CARGO_LAMBDA = @test -x .local/venv/bin/cargo-lambda || \
  { echo "cargo-lambda missing: run infra/install.sh (or pip install cargo-lambda)" >&2; exit 1; }

# SAM shows cargo's output only when a build fails, so a line every minute says
# how far the twelve release binaries (fat LTO, one link each) have come.
PROGRESS = stamp=$$(mktemp); ( s=0; while sleep 5; do s=$$((s + 5)); [ $$((s % 60)) -eq 0 ] && \
  echo "make: $$((s / 60)) min, $$(find target/lambda-build/lambda -name bootstrap -newer $$stamp 2>/dev/null | wc -l) of $(words $(FUNCTIONS)) binaries linked"; \
  done ) & progress=$$!; trap 'kill $$progress; rm -f $$stamp' EXIT;

build: $(SAM_VENV)/.installed  ## sam build for ARCH (default x86_64 here; the template defaults to arm64)
	$(NEED_CARGO_LAMBDA)
	@echo "make: sam build, $(words $(FUNCTIONS)) release binaries for $(ARCH); a fresh build took 38 min on 2 cores (BENCHMARKS.md)"
	@$(PROGRESS) $(SAM_ENV) AWS_DEFAULT_REGION=$(REGION) $(SAM) build --parameter-overrides Architecture=$(ARCH)

validate: $(SAM_VENV)/.installed  ## sam validate --lint (cfn-lint; no AWS account needed)
	AWS_DEFAULT_REGION=$(REGION) $(SAM) validate --lint

# make smoke BASE=https://pay.example.com [SMOKE_ARGS="--connected-store <id>"]
# with INTERNAL_SECRET in the environment; see infra/smoke.py --help.
SMOKE_PYTHON := $(if $(wildcard .local/venv/bin/python),.local/venv/bin/python,$(PYTHON))
smoke:  ## smoke test a deployment (or the local stack) at BASE
	@test -n "$(BASE)" || { echo "usage: make smoke BASE=https://<your API or domain> [SMOKE_ARGS=...]" >&2; exit 2; }
	$(SMOKE_PYTHON) infra/smoke.py "$(BASE)" $(SMOKE_ARGS)

bench:
	.local/venv/bin/python bench/lambda_bench.py

# make deploy ENV=dev|prod: build and deploy with samconfig.toml's parameters for
# that environment (so the build's architecture is the one deployed).
deploy: $(SAM_VENV)/.installed
	@test -n "$(ENV)" || { echo "usage: make deploy ENV=dev|prod (see README, Deploy)" >&2; exit 2; }
	$(NEED_CARGO_LAMBDA)
	@$(PROGRESS) $(SAM_ENV) $(SAM) build --config-env $(ENV)
	$(SAM_ENV) $(SAM) deploy --config-env $(ENV)
