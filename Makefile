# The verbs people expect; the README explains each.
.PHONY: run test lint build bench deploy

run:    ## serve everything locally on the emulated stack
	infra/run.sh

test:   ## every test: lint, unit, handler, system, infra, browser, log scan
	infra/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

FUNCTIONS := $(notdir $(wildcard functions/*))

build:  ## release Lambda binaries, zipped (x86-64 here; see README for arm64)
	# Its own target dir: a cross build must not hold the dev build's lock.
	PATH="$(CURDIR)/.local/venv/bin:$$PATH" CARGO_TARGET_DIR=target/lambda-build \
	  cargo lambda build --release --x86-64 --output-format zip \
	  $(addprefix -p ,$(FUNCTIONS))

bench:
	.local/venv/bin/python bench/lambda_bench.py

deploy:
	sam build && sam deploy
