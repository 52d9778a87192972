#!/usr/bin/env bash
# Time and peak memory of signing and verifying big scripts (issue #15), in one run.
#
#   usage: bench/script.sh [SIZE_MIB...]         (default: $SIZES, or "8 64 256")
#   env:   RUNS=3              timed runs per command; the best wall time is kept
#          OSSL=1              also time osslsigncode sign and verify (0: skip them)
#          CODESEAL_BIN=PATH   time this codeseal binary instead of building the tree's
#
# Per size, a PowerShell script (UTF-8 with a byte order mark, CRLF, ASCII code with a few
# non-ASCII characters on every line) is generated, then timed (wall seconds, best of RUNS,
# from bash's EPOCHREALTIME; peak RSS in KiB, the largest seen, from `/usr/bin/time -f %M`,
# the "Maximum resident set size" of `/usr/bin/time -v`):
#   openssl dgst -sha256 FILE                      (the floor: one plain SHA-256 pass)
#   codeseal sign --key file:KEY --cert CHAIN FILE -o OUT
#   codeseal verify OUT
#   osslsigncode sign / verify                     (OSSL=1)
# The script's digest covers its text as UTF-16LE, so codeseal hashes about twice the
# bytes openssl does, and sign reads the text twice (once to hash it and copy it to the
# temp file, once to check the written file) and fsyncs the output before renaming it.
# Every input is in the page cache; each signer's previous output is deleted before a run,
# outside the timing. Everything lives in a temp dir removed on exit; nothing is written to
# the repository except the release build in the target directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -gt 0 ]]; then
  SIZES="$*"
fi
SIZES="${SIZES:-8 64 256}"
RUNS="${RUNS:-3}"
OSSL="${OSSL:-1}"
TIME=/usr/bin/time

die() {
  echo "script.sh: $*" >&2
  exit 1
}
[[ -n "${EPOCHREALTIME:-}" ]] || die "bash 5 or later is needed (EPOCHREALTIME)"
[[ -x "$TIME" ]] || die "$TIME is missing (Debian package \`time\`)"
command -v openssl >/dev/null || die "openssl is missing"
if [[ "$OSSL" == 1 ]] && ! command -v osslsigncode >/dev/null; then
  echo "== osslsigncode not found: skipping it"
  OSSL=0
fi

if [[ -n "${CODESEAL_BIN:-}" ]]; then
  CODESEAL="$CODESEAL_BIN"
  [[ -x "$CODESEAL" ]] || die "CODESEAL_BIN=$CODESEAL is not an executable"
else
  echo "== cargo build --release --bin codeseal"
  (cd "$ROOT" && cargo build --release --quiet --bin codeseal)
  CODESEAL="$ROOT/target/release/codeseal"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-script-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "== test PKI (scripts/test-env.sh)"
bash "$ROOT/scripts/test-env.sh" "$WORK/env" >/dev/null
PKI="$WORK/env/pki"
KEY="$PKI/leaf-rsa2048.key"
CHAIN="$PKI/leaf-rsa2048-chain.pem"
ROOTCA="$PKI/root.pem"

# gen SIZE_MIB FILE
gen() {
  python3 - "$1" "$2" <<'EOF'
import sys
size, path = int(sys.argv[1]) << 20, sys.argv[2]
lines = []
n = 0
i = 0
while n < 1 << 20:
    l = f'Write-Host "line {i}: Gr\u00fc\u00dfe, caf\u00e9, \u20ac5 \u2014 ok" # comment\r\n'.encode()
    lines.append(l)
    n += len(l)
    i += 1
block = b"".join(lines)
with open(path, "wb") as f:
    f.write(b"\xef\xbb\xbf")
    written = 3
    while written < size:
        f.write(block)
        written += len(block)
EOF
}

# measure LABEL [--rm FILE] CMD...: sets WALL_S and RSS_K (best wall, largest RSS of RUNS)
measure() {
  local label="$1" rmfile="" i t0 t1 e m best="" peak=0 tf="$WORK/time.txt"
  shift
  if [[ "$1" == --rm ]]; then
    rmfile="$2"
    shift 2
  fi
  for ((i = 0; i < RUNS; i++)); do
    [[ -n "$rmfile" ]] && rm -f "$rmfile"
    t0="$EPOCHREALTIME"
    if ! "$TIME" -f '%M' -o "$tf" "$@" >"$WORK/cmd.out" 2>&1; then
      cat "$WORK/cmd.out" >&2
      die "$label failed: $*"
    fi
    t1="$EPOCHREALTIME"
    e="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    m="$(tail -n 1 "$tf")"
    if [[ -z "$best" ]] || awk -v a="$e" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best="$e"
    fi
    ((m > peak)) && peak="$m"
  done
  WALL_S="$best"
  RSS_K="$peak"
}

echo "== $(nproc) CPUs; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| size | command | wall s | peak RSS KiB |\n|---|---|---|---|\n'
for size in $SIZES; do
  in="$WORK/big-$size.ps1"
  out="$WORK/big-$size-signed.ps1"
  out2="$WORK/big-$size-ossl.ps1"
  gen "$size" "$in"
  cat "$in" >/dev/null
  row() { printf '| %s MiB | %s | %s | %s |\n' "$size" "$1" "$WALL_S" "$RSS_K"; }
  measure "openssl dgst" openssl dgst -sha256 "$in"
  row "openssl dgst -sha256"
  measure "codeseal sign" --rm "$out" "$CODESEAL" sign --key "file:$KEY" --cert "$CHAIN" "$in" -o "$out"
  row "codeseal sign"
  cat "$out" >/dev/null
  measure "codeseal verify" "$CODESEAL" verify --trust "$ROOTCA" "$out"
  row "codeseal verify"
  if [[ "$OSSL" == 1 ]]; then
    measure "osslsigncode sign" --rm "$out2" osslsigncode sign -certs "$CHAIN" -key "$KEY" -h sha256 -in "$in" -out "$out2"
    row "osslsigncode sign"
    measure "osslsigncode verify" osslsigncode verify -CAfile "$ROOTCA" -in "$out2"
    row "osslsigncode verify"
  fi
  rm -f "$in" "$out" "$out2"
done
echo
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
