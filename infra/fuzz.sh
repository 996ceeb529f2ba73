#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes (fuzz/src/lib.rs) under libFuzzer,
# through cargo-fuzz on the stable toolchain (no sanitizer: -s none, since
# the sanitizers need nightly; Rust's own checks still panic on overflow and
# out-of-bounds, and debug assertions are on). Each target runs for SECONDS, capped at 512 MB of memory and 10 s
# per input, starting from its kept corpus; inputs that reach new code are
# merged back into fuzz/corpus/<target>/ (commit them). A crash leaves its
# input in fuzz/artifacts/<target>/ and fails the run.
#
#   infra/fuzz.sh [SECONDS] [TARGET...]     (make fuzz FUZZ_SECONDS=300)
#
# With FUZZ_RUNS=N each target instead runs until it has executed N inputs
# (make fuzz FUZZ_RUNS=10000000: the issue's goal), however long that takes.
#
# Ends with a table: executions and crashes per target.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_EACH="${1:-120}"
shift || true
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
targets=("$@")
if [[ ${#targets[@]} == 0 ]]; then
  mapfile -t targets < <(cargo fuzz list)
fi
# cargo-fuzz's default build: optimised, with debug assertions and overflow
# checks (so arithmetic bugs crash too). Without the release profile's fat
# LTO (minutes per target to link, for a few percent of speed).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_STRIP=false
FUZZ=(cargo fuzz run -s none --features libfuzzer --codegen-units 16)
cargo fuzz build -s none --features libfuzzer --codegen-units 16

results=() crashed=0
for target in "${targets[@]}"; do
  work="$(mktemp -d)"
  # Not in $work: libFuzzer reads every file there as an input.
  log="$(mktemp)"
  if [[ -n "${FUZZ_RUNS:-}" ]]; then
    budget=(-runs="$FUZZ_RUNS")
    echo "fuzz.sh: $target for $FUZZ_RUNS executions" >&2
  else
    budget=(-max_total_time="$SECONDS_EACH")
    echo "fuzz.sh: $target for ${SECONDS_EACH}s" >&2
  fi
  status=ok
  started=$SECONDS
  if ! "${FUZZ[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
      "${budget[@]}" -rss_limit_mb=512 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=CRASH
    crashed=$((crashed + 1))
    tail -n 40 "$log" >&2
  fi
  execs="$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -n 1)"
  rate="$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log" | tail -n 1)"
  # Keep what reached new code, minimised against what is kept already.
  "${FUZZ[@]}" "$target" "fuzz/corpus/$target" "$work" -- -merge=1 >/dev/null 2>&1 || true
  kept="$(find "fuzz/corpus/$target" -type f | wc -l)"
  results+=("$(printf '%-22s %12s %10s %8s %8s  %s' "$target" "${execs:-?}" "${rate:-?}" "$((SECONDS - started))" "$kept" "$status")")
  rm -rf "$work" "$log"
done

printf '\n%-22s %12s %10s %8s %8s  %s\n' target executions "execs/s" seconds corpus result
printf '%s\n' "${results[@]}"
[[ $crashed == 0 ]]
