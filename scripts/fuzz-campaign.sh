#!/usr/bin/env bash
# A long fuzzing campaign: runs each TARGET (cargo-fuzz, fuzz/) until FUZZ_RUNS executions or
# FUZZ_SECONDS, whichever comes first, at nice 19, with the limits of the acceptance runs:
#   -max_len=1048576   inputs up to 1 MiB
#   -timeout=2         an input taking over 2 s is a finding (timeout-*)
#   -rss_limit_mb=2048 more memory is a finding (oom-*)
#   -report_slow_units=1  an input taking over 1 s is saved as slow-unit-* (a finding too)
# on the seed corpus (fuzz/corpus/<t>/, made by scripts/make-fuzz-corpus.sh when missing) plus
# the regression inputs (fuzz/regressions/<t>/), with the project dictionary.
#
# Findings (crash-*, leak-*, timeout-*, slow-unit-*, oom-*) are written to
# ARTIFACTS/<t>/ and afterwards copied into fuzz/regressions/<t>/, where
# authenticode/tests/fuzz_regressions.rs replays them under `cargo test` (which then fails
# until the bug is fixed: that is the point). libFuzzer stops a target at its first crash,
# timeout or OOM; fix it and run again.
#
# Prints one line per target: executions, exec/s, cov (edges), ft (features), findings.
# Exits 1 when any target had a finding or did not run, 0 otherwise.
#
#   usage: scripts/fuzz-campaign.sh [TARGET...]
#          (default: the parsing targets pe_headers wincert_table pkcs7_signature
#           verify_file timestamp_token script_parse cab_header; also key_decoding, sign_roundtrip)
#   env:   FUZZ_RUNS=N        executions per target (default 10000000)
#          FUZZ_SECONDS=T     time per target (default 3600)
#          FUZZ_PARALLEL=N    targets run at once (default 1; each uses one core)
#          FUZZ_NICE=N        niceness of the fuzzers (default 19). libFuzzer's -timeout is
#                             wall-clock time: a fuzzer starved of CPU by other work at a
#                             lower niceness reports fast inputs as timeouts. On a busy
#                             machine use 0, so the fuzzers get their share.
#          FUZZ_MAX_LEN=N     -max_len (default 1048576; 4194304 with seeds of 1-4 MiB)
#          FUZZ_ARTIFACTS=DIR where findings go (default fuzz/artifacts/campaign-DATE)
#          FUZZ_LOGS=DIR      per-target logs (default ARTIFACTS/logs)
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/fuzz"
ALL=(pe_headers wincert_table pkcs7_signature verify_file timestamp_token key_decoding sign_roundtrip script_parse cab_header msi_walk catalog_parse revocation_answers appx_parse)
PARSERS=(pe_headers wincert_table pkcs7_signature verify_file timestamp_token script_parse cab_header msi_walk catalog_parse revocation_answers appx_parse)
MAX_LEN="${FUZZ_MAX_LEN:-1048576}"
TIMEOUT=2
SLOW=1
RSS_MB=2048
FINDINGS='crash-* leak-* timeout-* slow-unit-* oom-*'

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
num() { [[ "$2" =~ ^[0-9]+$ && "$2" -gt 0 ]] || { echo "fuzz-campaign: $1 must be a positive number" >&2; exit 2; }; }

TARGETS=("$@")
(( ${#TARGETS[@]} )) || TARGETS=("${PARSERS[@]}")
for t in "${TARGETS[@]}"; do
  [[ "$t" == -h || "$t" == --help ]] && usage
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz-campaign: unknown target $t (targets: ${ALL[*]})" >&2; exit 2; }
done
RUNS="${FUZZ_RUNS:-10000000}"; num FUZZ_RUNS "$RUNS"
SECS="${FUZZ_SECONDS:-3600}"; num FUZZ_SECONDS "$SECS"
PAR="${FUZZ_PARALLEL:-1}"; num FUZZ_PARALLEL "$PAR"
num FUZZ_MAX_LEN "$MAX_LEN"
NICE="${FUZZ_NICE:-19}"; [[ "$NICE" =~ ^[0-9]+$ && "$NICE" -le 19 ]] || { echo "fuzz-campaign: FUZZ_NICE must be 0..19" >&2; exit 2; }
ART="${FUZZ_ARTIFACTS:-$FUZZ/artifacts/campaign-$(date +%Y%m%d-%H%M%S)}"
LOGS="${FUZZ_LOGS:-$ART/logs}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-campaign: installing cargo-fuzz"
  timeout 900 cargo install cargo-fuzz --locked --version '^0.13' --quiet
fi
if [[ ! -f "$FUZZ/corpus/.seeded" ]]; then
  timeout 900 bash "$ROOT/scripts/make-fuzz-corpus.sh"
fi
echo "fuzz-campaign: building ${TARGETS[*]} ($(cargo fuzz --version))"
for t in "${TARGETS[@]}"; do (cd "$FUZZ" && timeout 3600 nice -n 19 cargo fuzz build "$t"); done
BIN="$FUZZ/target/x86_64-unknown-linux-gnu/release"
mkdir -p "$LOGS"

# run_target T: one bounded libFuzzer run; its exit status goes to LOGS/T.rc.
run_target() {
  local t=$1 rc=0
  mkdir -p "$FUZZ/corpus/$t" "$ART/$t"
  # The wall-clock bound covers loading the corpus, which -max_total_time does not.
  timeout --kill-after=30 $((SECS + 600)) nice -n "$NICE" "$BIN/$t" \
    "$FUZZ/corpus/$t" "$FUZZ/regressions/$t" \
    -runs="$RUNS" -max_total_time="$SECS" -max_len="$MAX_LEN" -timeout="$TIMEOUT" \
    -report_slow_units="$SLOW" -rss_limit_mb="$RSS_MB" -print_final_stats=1 \
    -dict="$FUZZ/dict/authenticode.dict" -artifact_prefix="$ART/$t/" \
    >"$LOGS/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$LOGS/$t.rc"
}

echo "fuzz-campaign: ${#TARGETS[@]} targets, each to $RUNS executions or ${SECS}s, $PAR at a time (findings in $ART, logs in $LOGS)"
pids=()
for t in "${TARGETS[@]}"; do
  while (( $(jobs -rp | wc -l) >= PAR )); do wait -n || true; done
  echo "fuzz-campaign: $(date +%T) starting $t"
  run_target "$t" &
  pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p" || true; done

# final_stat LOG NAME: a libFuzzer final stat (-print_final_stats=1).
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n1; }

bad=()
echo
printf '%-16s %10s %8s %7s %8s %8s  %s\n' target execs exec/s cov ft findings status
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  rc=$(cat "$LOGS/$t.rc" 2>/dev/null || echo '?')
  execs=$(final_stat "$log" number_of_executed_units)
  eps=$(final_stat "$log" average_exec_per_sec)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1 || true)
  [[ -n "$execs" ]] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  # libFuzzer's average is 0 for a run under a second: then the last status line's rate.
  [[ -n "$eps" && "$eps" != 0 ]] || eps=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  # Every finding goes to the regressions, under its libFuzzer name (crash-<sha1> etc.).
  found=()
  for pat in $FINDINGS; do
    for f in "$ART/$t"/$pat; do [[ -f "$f" ]] && found+=("$f"); done
  done
  mkdir -p "$FUZZ/regressions/$t"
  for f in "${found[@]}"; do
    dest="$FUZZ/regressions/$t/$(basename "$f")"
    [[ -e "$dest" ]] || cp "$f" "$dest"
  done
  kinds=""
  for pat in $FINDINGS; do
    n=$(find "$ART/$t" -maxdepth 1 -type f -name "$pat" | wc -l)
    (( n )) && kinds+="${kinds:+,}$n ${pat%-\*}"
  done
  status=ok
  if (( ${#found[@]} )); then
    status="FINDINGS ($kinds) -> fuzz/regressions/$t/"
    bad+=("$t")
  elif [[ "$rc" != 0 ]]; then
    status="FAILED (exit $rc, see $log)"
    bad+=("$t")
  fi
  printf '%-16s %10s %8s %7s %8s %8s  %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${#found[@]}" "$status"
done
echo "fuzz-campaign: limits -runs=$RUNS -max_total_time=$SECS -max_len=$MAX_LEN -timeout=$TIMEOUT -report_slow_units=$SLOW -rss_limit_mb=$RSS_MB"
if (( ${#bad[@]} )); then
  echo "fuzz-campaign: findings or failures in: ${bad[*]} (replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET regressions/TARGET/FILE)" >&2
  exit 1
fi
echo "fuzz-campaign: no crash, leak, timeout, slow unit or OOM"
