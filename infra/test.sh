#!/usr/bin/env bash
# The one test command (`make test`; .ci/run calls exactly this): installs what
# is missing, starts a private local stack and the functions, then runs every
# test: lint, unit and handler tests, system tests over real HTTP, infra checks,
# browser tests, and finally the scan of every log line for secrets.
# Nothing is skipped for a missing tool: install.sh installs it or fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n=== %s ===\n' "$*" >&2; }

step "install"
infra/install.sh

# A stack of its own, so a developer's `make run` keeps running meanwhile.
export STACK_DIR="${TEST_STACK_DIR:-$ROOT/.local/test-stack}"
infra/stack.sh stop >/dev/null 2>&1 || true  # leftovers of an interrupted run
trap 'infra/stack.sh stop' EXIT

step "lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "local stack"
infra/stack.sh start
# A fresh secret per run: tests must not depend on a known value.
INTERNAL_SECRET="$(.local/venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
  PORT="" infra/stack.sh serve >/dev/null
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# shellcheck disable=SC1091
source "$STACK_DIR/service.env"
set +a

step "cargo test (unit, handler and system tests)"
cargo test --workspace

step "infra checks (bootstrap, routes)"
.local/venv/bin/pytest -q -c infra/pytest.ini infra/tests --ignore=infra/tests/test_logs.py

step "browser tests"
mkdir -p artifacts/browser
node --test --test-concurrency=1 tests/browser/

step "no secret in any log line"
.local/venv/bin/pytest -q -c infra/pytest.ini infra/tests/test_logs.py
