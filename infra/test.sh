#!/usr/bin/env bash
# The one test command (`make test`; .ci/run calls exactly this): installs what
# is missing, starts a private local stack and the functions, then runs every
# test: lint, unit and handler tests, system tests over real HTTP, infra checks,
# browser tests, the deploy smoke test (infra/smoke.py), schemathesis against
# openapi.yaml (infra/schemathesis_run.py), and finally the scan of
# every log line, page and API response for secrets. Each stage prints how long it took; a table of all
# stage durations ends the output, also when a stage failed.
# Nothing is skipped for a missing tool: install.sh installs it or fails.
set -euo pipefail
# The whole script is one block, read before it runs: editing this file while a
# test run is under way cannot change what that run does next.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Each stage announces itself, says how long it took when it ends, and the EXIT
# trap prints every stage's duration, also when one failed (then it is the last).
STAGES=()          # "seconds<TAB>result<TAB>name"
stage="" stage_start=0 run_start=$SECONDS stack_started=""
end_stage() {      # end_stage ok|FAILED
  [[ -n "$stage" ]] || return 0
  local took=$((SECONDS - stage_start))
  STAGES+=("$took"$'\t'"$1"$'\t'"$stage")
  if [[ "$1" == ok ]]; then
    printf '=== %s (took %d s) ===\n' "$stage" "$took" >&2
  else
    printf '=== %s FAILED after %d s ===\n' "$stage" "$took" >&2
  fi
  stage=""
}
step() {
  end_stage ok
  stage="$*" stage_start=$SECONDS
  printf '\n=== %s ===\n' "$*" >&2
}
finish() {
  local rc=$?
  end_stage "$([[ $rc == 0 ]] && echo ok || echo FAILED)"
  # Only the stack this script started (never a developer's `make run` stack).
  if [[ -n "$stack_started" ]]; then infra/stack.sh stop || true; fi
  {
    printf '\n%-44s %8s  %s\n' "stage" "seconds" "result"
    local line took result name
    for line in "${STAGES[@]}"; do
      IFS=$'\t' read -r took result name <<<"$line"
      printf '%-44s %8d  %s\n' "$name" "$took" "$result"
    done
    printf '%-44s %8d  %s\n' "total" "$((SECONDS - run_start))" \
      "$([[ $rc == 0 ]] && echo "all passed" || echo "FAILED (exit $rc)")"
  } >&2
  exit "$rc"
}
trap finish EXIT

step "install"
infra/install.sh

# A stack of its own, so a developer's `make run` keeps running meanwhile.
export STACK_DIR="${TEST_STACK_DIR:-$ROOT/.local/test-stack}"
infra/stack.sh stop >/dev/null 2>&1 || true  # leftovers of an interrupted run
stack_started=yes

step "lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "build the functions (debug)"
# What `stack.sh serve` builds, here with cargo's progress (it builds quietly;
# then it finds everything up to date). The first build takes several minutes.
functions=()
for dir in functions/*/; do functions+=(-p "$(basename "$dir")"); done
cargo build --bins "${functions[@]}"

step "local stack"
infra/stack.sh start
# Every answer the functions give from here on, over HTTP (through
# infra/recording_proxy.py) and in-process (the fault run), is recorded here
# for the last stage's secret scan; a fresh record per run.
export RECORD_RESPONSES="$STACK_DIR/responses"
rm -rf "$RECORD_RESPONSES" && mkdir -p "$RECORD_RESPONSES"
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
.local/venv/bin/pytest -q -c infra/pytest.ini infra/tests --ignore=infra/tests/test_logs.py \
  --ignore=infra/tests/test_responses.py

step "browser tests"
mkdir -p artifacts/browser
node --test --test-concurrency=1 tests/browser/

step "smoke test (infra/smoke.py)"
# The deploy's first check, here with a store it connects itself with made-up
# test keys (only the Stripe emulator accepts them), checks out and disconnects.
.local/venv/bin/python infra/smoke.py "$CHECKOUT_BASE_URL" --connect-with-test-key

step "schemathesis (openapi.yaml, short run)"
# Generated requests against every operation, with real data (connected
# stores, a signed link, a checkout token); any failed check fails the run.
# A fixed seed and a short budget here; `make verify` runs longer.
.local/venv/bin/python infra/schemathesis_run.py "$CHECKOUT_BASE_URL" --max-time "${SCHEMATHESIS_MAX_TIME:-90}"

step "no secret in any log line, page or API response"
.local/venv/bin/pytest -q -c infra/pytest.ini infra/tests/test_logs.py infra/tests/test_responses.py
exit 0
}
