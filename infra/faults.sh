#!/usr/bin/env bash
# The injected-faults run at full length (tests/system/tests/injected_faults.rs):
# FAULT_OPS operations (default 1000) with the seed FAULT_SEED (default
# 20261207) against a local stack of its own, then the invariants. CI runs the
# same test with 60 operations inside `make test`.
#
#   infra/faults.sh [OPS] [SEED]          (make faults FAULT_OPS=1000)
#
# Prints the faults injected per dependency and kind, the answers per
# operation and status, and the invariants' result.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export FAULT_OPS="${1:-1000}" FAULT_SEED="${2:-20261207}"
export STACK_DIR="${STACK_DIR:-$ROOT/.local/faults-stack}"
export DYNAMODB_HEAP="${DYNAMODB_HEAP:-512m}"

infra/install.sh
cargo test -p system-tests --test injected_faults --no-run --quiet
trap 'infra/stack.sh stop >/dev/null 2>&1 || true' EXIT
infra/stack.sh stop >/dev/null 2>&1 || true
infra/stack.sh start
INTERNAL_SECRET="$(.local/venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
  PORT="" infra/stack.sh serve >/dev/null
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# shellcheck disable=SC1091
source "$STACK_DIR/service.env"
set +a
RUST_LOG=warn cargo test -p system-tests --test injected_faults -- --nocapture 2>&1 \
  | grep -v '^{"'
