# The verbs people expect; the README explains each.
.PHONY: run test lint build bench deploy

run:    ## serve everything locally on the emulated stack
	infra/run.sh

test:   ## every test: lint, unit, handler, system, infra, browser, log scan
	infra/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

build:  ## release Lambda binaries (x86-64 here; see README for arm64)
	PATH="$(CURDIR)/.local/venv/bin:$$PATH" cargo lambda build --release --x86-64

bench:
	.local/venv/bin/python bench/lambda_bench.py

deploy:
	sam build && sam deploy
