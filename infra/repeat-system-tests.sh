#!/usr/bin/env bash
# Runs the system suite (tests/system: every test over real HTTP and the
# local stack) RUNS times in a row (default 20) against one local stack while
# other processes keep both cores busy: a test that can fail on a slow or
# loaded machine shows up here rather than in CI. Not part of `make test`
# (it takes RUNS times as long).
#
#   infra/repeat-system-tests.sh [RUNS]
#
# REPEAT_BUSY=0 leaves out the busy loops, for when other CPU-bound work
# (a `make fuzz` campaign, one process per core) is the load instead.
#
# Prints one line per run and a summary; exits non-zero if any run failed.
# The logs of failed runs stay in $STACK_DIR/repeat-<n>.log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-20}"
export STACK_DIR="${STACK_DIR:-$ROOT/.local/repeat-stack}"
# Twenty runs keep their data in one DynamoDB Local: its default 64 MB heap ran
# out at run 12 (java.lang.OutOfMemoryError, answered as a 500).
export DYNAMODB_HEAP="${DYNAMODB_HEAP:-1g}"

infra/install.sh
cargo build --workspace --bins --quiet
cargo test -p system-tests --no-run --quiet

busy=()
cleanup() {
  # Only what this script started: the load processes and its own stack.
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done
  infra/stack.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

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

# One busy loop per core, at the same priority as the tests.
[[ "${REPEAT_BUSY:-1}" == 0 ]] || for _ in $(seq "$(nproc)"); do
  ( exec yes >/dev/null ) &
  busy+=("$!")
done

failed=0
for run in $(seq "$RUNS"); do
  log="$STACK_DIR/repeat-$run.log"
  start=$SECONDS
  if cargo test -p system-tests >"$log" 2>&1; then
    result=passed
    rm -f "$log"
  else
    result="FAILED (log: $log)"
    failed=$((failed + 1))
  fi
  printf 'run %2d of %d: %s in %d s\n' "$run" "$RUNS" "$result" "$((SECONDS - start))"
done
printf '%d passed, %d failed\n' "$((RUNS - failed))" "$failed"
[[ "$failed" == 0 ]]
