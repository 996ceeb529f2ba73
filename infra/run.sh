#!/usr/bin/env bash
# `make run`: installs what is missing, starts the local stack, builds and
# serves every function at its production path on http://127.0.0.1:$PORT,
# prints a signed connect link for a demo store, and runs until interrupted
# (Ctrl-C), then stops everything it started.
#   PORT             port to serve on (default: a free one)
#   INTERNAL_SECRET  secret shared with BMOS (default: generated and printed)
set -euo pipefail
# One block, read before it runs: editing this file cannot disturb a running copy.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export STACK_DIR="${STACK_DIR:-$ROOT/.local/stack}"
started=$SECONDS
say() { echo "run.sh: $* ($((SECONDS - started)) s so far)" >&2; }

say "installing what is missing (first run: several minutes)"
infra/install.sh
infra/stack.sh stop >/dev/null 2>&1 || true
trap 'infra/stack.sh stop' EXIT
trap 'exit 0' INT TERM
# What `stack.sh serve` builds, with cargo's progress shown (it builds quietly
# and then finds everything up to date).
say "building the functions (debug; the first build takes several minutes)"
functions=()
for dir in functions/*/; do functions+=(-p "$(basename "$dir")"); done
cargo build --bins "${functions[@]}"
say "starting the local stack (DynamoDB Local, moto, localstripe)"
infra/stack.sh start
say "serving the functions (rebuilt and restarted when you edit the code)"
RELOAD_ON_CHANGE=1 infra/stack.sh serve
set -a
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# shellcheck disable=SC1091
source "$STACK_DIR/service.env"
set +a

store_id="$(.local/venv/bin/python -c 'import uuid; print(uuid.uuid4())')"
# Signed the way BMOS signs links itself (README: "Connect links").
link="$(.local/venv/bin/python - "$store_id" <<'PY'
import hashlib, hmac, os, sys, time, urllib.parse
store_id, base = sys.argv[1], os.environ["CHECKOUT_BASE_URL"]
return_url = f"{base}/stripe/status/{store_id}"
expires = str(int(time.time()) + 3600)
message = f"connect.{store_id}.{return_url}.{expires}".encode()
signature = hmac.new(os.environ["INTERNAL_SECRET"].encode(), message, hashlib.sha256).hexdigest()
query = urllib.parse.urlencode({"store_id": store_id, "return_url": return_url, "expires": expires, "signature": signature})
print(f"{base}/stripe/connect?{query}")
PY
)"

cat <<MSG

checkout.best is running locally. Base URL:
$CHECKOUT_BASE_URL

Connect a demo store (valid for one hour; any sk_test_ key works against the Stripe emulator):
$link

Its status:
$CHECKOUT_BASE_URL/stripe/status/$store_id

Internal API: X-Internal-Secret as printed above (or from $STACK_DIR/service.env).
Logs: $STACK_DIR/*.log. Press Ctrl-C to stop everything.
MSG
# Wait for Ctrl-C; the EXIT trap stops the stack and the functions.
while infra/stack.sh status >/dev/null; do sleep 2; done
echo "a service stopped unexpectedly; see $STACK_DIR/*.log" >&2
exit 1
}
