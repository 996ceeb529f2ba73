#!/usr/bin/env bash
# `make verify`: the long form of the tools the test command runs briefly.
# Starts a private stack (like infra/test.sh), runs schemathesis against
# openapi.yaml with real data for SCHEMATHESIS_MAX_TIME seconds (default 600)
# and seed SEED (default: the fixed one in infra/schemathesis_run.py), stops
# the stack, and exits non-zero on any finding. RELIABILITY.md has the figures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
infra/install.sh
export STACK_DIR="${VERIFY_STACK_DIR:-$ROOT/.local/verify-stack}"
infra/stack.sh stop >/dev/null 2>&1 || true  # leftovers of an interrupted run
trap 'infra/stack.sh stop || true' EXIT
infra/stack.sh start
INTERNAL_SECRET="$(.local/venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
  PORT="" infra/stack.sh serve >/dev/null
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# shellcheck disable=SC1091
source "$STACK_DIR/service.env"
set +a
seed=()
[[ -n "${SEED:-}" ]] && seed=(--seed "$SEED")
.local/venv/bin/python infra/schemathesis_run.py "$CHECKOUT_BASE_URL" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-600}" "${seed[@]}"
