#!/usr/bin/env bash
# Hostile signatures (issue #13): codeseal verify, codeseal info and osslsigncode verify on
# every variant of authenticode/tests/hostile.rs, one run each, in a table.
#
#   usage: bench/hostile.sh [--large] [NAME...]
#          no NAME: every variant the test runs by default; --large: the #[ignore]d largest
#          sizes too; NAME: variants by the names the test prints (attr-values-desc-100000,
#          nested-chain-10000, ...; see Spec in authenticode/tests/common/hostile_gen.rs)
#   env:   TIMEOUT=120         seconds per command; a command still running is killed and
#                              the table says TIMEOUT
#          CODESEAL_BIN=PATH   time this codeseal binary instead of building the tree's
#
# The variants come from the test's own generator (benches/examples/hostile_gen.rs includes
# authenticode/tests/common/hostile_gen.rs), applied to the pe64.exe fixture signed here by
# the release `codeseal sign` with the test PKI's leaf-rsa2048. Commands:
#   codeseal verify --trust root.pem --tsa-trust tsa-root.pem FILE
#   codeseal info FILE
#   osslsigncode verify -CAfile root.pem -TSA-CAfile tsa-root.pem -in FILE
# Each is timed once (wall seconds from bash's EPOCHREALTIME) with its exit code; any
# verdict is fine, a rejection included: the column to watch is the time against the
# test's bound, 1 s + 5 s per MiB in a debug build (release should be far below it).
# Peak RSS (KiB, `/usr/bin/time -f %M`) is shown for codeseal verify when /usr/bin/time
# exists. Everything lives in a temp dir removed on exit; each variant's file is deleted
# once timed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIMEOUT="${TIMEOUT:-120}"
die() { echo "hostile.sh: $*" >&2; exit 1; }
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT must be a positive number of seconds"
[[ -n "${EPOCHREALTIME:-}" ]] || die "bash 5 or later is needed (EPOCHREALTIME)"
for t in cargo osslsigncode timeout; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/setup.sh)"
done
TIME=/usr/bin/time
[[ -x "$TIME" ]] || TIME=""

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "== building (release): codeseal, the hostile_gen example"
if [[ -n "${CODESEAL_BIN:-}" ]]; then
  CODESEAL="$CODESEAL_BIN"
  [[ -x "$CODESEAL" ]] || die "CODESEAL_BIN=$CODESEAL is not an executable"
else
  (cd "$ROOT" && cargo build --release --quiet -p codeseal)
  CODESEAL="$TARGET/release/codeseal"
fi
(cd "$ROOT" && cargo build --release --quiet -p codeseal-benches --example hostile_gen)
GEN="$TARGET/release/examples/hostile_gen"
[[ -x "$CODESEAL" && -x "$GEN" ]] || die "binaries not found after the build"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-hostile.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== test PKI and fixtures (scripts/test-env.sh)"
bash "$ROOT/scripts/test-env.sh" "$WORK/env" >/dev/null
PKI="$WORK/env/pki"
"$CODESEAL" sign --key "file:$PKI/leaf-rsa2048.key" --cert "$PKI/leaf-rsa2048-chain.pem" \
  "$WORK/env/fixtures/pe64.exe" -o "$WORK/signed.exe" >/dev/null

echo "== generating the variants"
"$GEN" "$WORK/signed.exe" "$WORK/v" "$@" >"$WORK/list"

# timed LABEL CMD... -> sets T (seconds, or TIMEOUT) and RC
timed() {
  local t0 t1
  t0="$EPOCHREALTIME"
  set +e
  timeout -k 5 "$TIMEOUT" "$@" >"$WORK/out" 2>&1
  RC=$?
  set -e
  t1="$EPOCHREALTIME"
  if ((RC == 124 || RC == 137)); then
    T="TIMEOUT"
  else
    T="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  fi
}

echo "== $(nproc) CPUs; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); timeout ${TIMEOUT} s"
printf '%-30s %11s %8s | %12s %12s %12s | %10s | %s\n' variant bytes bound/s \
  "cs-verify/s" "cs-info/s" "ossl/s" "rss/KiB" "codeseal verify says"
while read -r name size path; do
  bound="$(awk -v s="$size" 'BEGIN { printf "%.2f", 1 + 5 * s / 1048576 }')"
  rss="-"
  if [[ -n "$TIME" ]]; then
    timed "$TIME" -f 'RSS %M' "$CODESEAL" verify --trust "$PKI/root.pem" --tsa-trust "$PKI/tsa-root.pem" "$path"
    r="$(grep -a '^RSS ' "$WORK/out" | tail -n 1 | cut -d' ' -f2 || true)"
    [[ -n "$r" && "$T" != TIMEOUT ]] && rss="$r"
  else
    timed "$CODESEAL" verify --trust "$PKI/root.pem" --tsa-trust "$PKI/tsa-root.pem" "$path"
  fi
  v="$T (rc $RC)"
  says="$(grep -a -m1 -iE 'error|fail|invalid|succeeded' "$WORK/out" | cut -c1-70 || true)"
  timed "$CODESEAL" info "$path"
  i="$T (rc $RC)"
  timed osslsigncode verify -CAfile "$PKI/root.pem" -TSA-CAfile "$PKI/tsa-root.pem" -in "$path"
  o="$T (rc $RC)"
  printf '%-30s %11s %8s | %12s %12s %12s | %10s | %s\n' "$name" "$size" "$bound" "$v" "$i" "$o" "$rss" "$says"
  rm -f "$path"
done <"$WORK/list"
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
