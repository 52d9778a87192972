#!/usr/bin/env bash
# Bounded fuzzing smoke run: builds every cargo-fuzz target in fuzz/ (AddressSanitizer, debug
# assertions and overflow checks) and runs each for SECONDS on its corpus (fuzz/corpus/<t>/,
# made by scripts/make-fuzz-corpus.sh when missing) plus the committed regression inputs
# (fuzz/regressions/<t>/), with the project dictionary. Prints, per target, executions,
# exec/s, coverage (cov: edges, ft: features) and corpus size from libFuzzer's final stats.
# Inputs are up to 1 MiB (-max_len=1048576, so that size-dependent slowness is reachable).
# Fails if any target crashes, panics, leaks, takes more than 2 s on one input (-timeout=2:
# a slow input is a finding, since parsing must be linear in the input size) or runs out of
# memory (-rss_limit_mb=2048); the input is then in fuzz/artifacts/<t>/ and the log in
# fuzz/artifacts/smoke-logs/<t>.log (FUZZ_LOGS to put the logs elsewhere).
#
#   usage: scripts/fuzz-smoke.sh [SECONDS]          (default 20 per target)
#   env:   FUZZ_TARGETS="pe_headers wincert_table"  (a subset; default all)
#          FUZZ_JOBS=N   parallel libFuzzer jobs per target (default 1)
#          FUZZ_RUNS=N   stop a target after N executions (SECONDS stays the cap)
#          FUZZ_LOGS=DIR where the per-target logs go (default fuzz/artifacts/smoke-logs)
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags.
# For a long campaign use scripts/fuzz-campaign.sh (same limits, nice 19, findings copied
# into fuzz/regressions/).
set -euo pipefail

SECS="${1:-20}"
[[ "$SECS" =~ ^[0-9]+$ && "$SECS" -gt 0 ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
ALL=(pe_headers wincert_table pkcs7_signature verify_file timestamp_token key_decoding sign_roundtrip script_parse cab_header msi_walk catalog_parse revocation_answers appx_parse)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL[*]}}"
JOBS="${FUZZ_JOBS:-1}"
RUNS="${FUZZ_RUNS:-}"
[[ -z "$RUNS" || "$RUNS" =~ ^[0-9]+$ ]] || { echo "FUZZ_RUNS must be a number" >&2; exit 2; }
# Limits shared with scripts/fuzz-campaign.sh: inputs up to 1 MiB, 2 s per input at most.
MAX_LEN=1048576
TIMEOUT=2
export RUSTC_BOOTSTRAP=1
t0=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  timeout 900 cargo install cargo-fuzz --locked --version '^0.13' --quiet
fi
if [[ ! -f "$FUZZ/corpus/.seeded" ]]; then
  timeout 900 bash "$ROOT/scripts/make-fuzz-corpus.sh"
fi

echo "fuzz-smoke: building ${#TARGETS[@]} targets ($(cargo fuzz --version))"
tb=$(date +%s)
if [[ "${TARGETS[*]}" == "${ALL[*]}" ]]; then
  (cd "$FUZZ" && timeout 3600 cargo fuzz build)
else
  for t in "${TARGETS[@]}"; do (cd "$FUZZ" && timeout 3600 cargo fuzz build "$t"); done
fi
build_s=$(( $(date +%s) - tb ))
BIN="$FUZZ/target/x86_64-unknown-linux-gnu/release"
LOGS="${FUZZ_LOGS:-$FUZZ/artifacts/smoke-logs}"
mkdir -p "$LOGS"

# final_stat LOG NAME: a libFuzzer final stat (-print_final_stats=1).
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n1; }

failed=()
rows=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$FUZZ/corpus/$t" "$FUZZ/artifacts/$t"
  log="$LOGS/$t.log"
  args=(
    "$FUZZ/corpus/$t" "$FUZZ/regressions/$t"
    -max_total_time="$SECS" -max_len="$MAX_LEN" -timeout="$TIMEOUT" -rss_limit_mb=2048
    -print_final_stats=1
    -dict="$FUZZ/dict/authenticode.dict" -artifact_prefix="$FUZZ/artifacts/$t/"
  )
  (( JOBS > 1 )) && args+=(-fork="$JOBS")
  [[ -n "$RUNS" ]] && args+=(-runs="$RUNS")
  echo "fuzz-smoke: running $t for ${SECS}s"
  rc=0
  # The wall-clock bound covers loading the corpus, which -max_total_time does not.
  timeout --kill-after=10 $((SECS + 300)) "$BIN/$t" "${args[@]}" >"$log" 2>&1 || rc=$?
  execs=$(final_stat "$log" number_of_executed_units)
  eps=$(final_stat "$log" average_exec_per_sec)
  rss=$(final_stat "$log" peak_rss_mb)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  status=ok
  if (( rc != 0 )) || grep -qE '^==[0-9]+== ?ERROR|^ERROR: libFuzzer|deadly signal|Test unit written to' "$log"; then
    status="FAILED (exit $rc)"
    failed+=("$t")
    grep -E 'panicked at|ERROR|SUMMARY|Test unit written to|^artifact_prefix' "$log" | head -n 12 | sed "s/^/  $t: /" >&2
  fi
  rows+=("$(printf '%-16s %10s %8s %7s %8s %12s %7s  %s' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$status")")
done

total_s=$(( $(date +%s) - t0 ))
echo
printf '%-16s %10s %8s %7s %8s %12s %7s  %s\n' target execs exec/s cov ft corpus rss_mb status
printf '%s\n' "${rows[@]}"
echo "fuzz-smoke: build ${build_s}s, total ${total_s}s (${SECS}s per target, logs in $LOGS)"
if (( ${#failed[@]} )); then
  echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/; replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET FILE)" >&2
  exit 1
fi
echo "fuzz-smoke: all ${#TARGETS[@]} targets ran ${SECS}s without a crash, leak, timeout (${TIMEOUT}s) or OOM (inputs up to $MAX_LEN bytes)"
