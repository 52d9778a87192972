#!/usr/bin/env bash
# Compare codeseal with its peers on large generated PE files, in one run.
#
#   usage: bench/compare.sh [SIZE_MIB...]        (default: $SIZES, or "16 256")
#   env:   SIZES="16 256"   file sizes in MiB (arguments win)
#          RUNS=3           timed runs per command; the best wall time is kept
#          GEN=section      how big PEs are made: "section" (default) or "overlay"
#
# What is timed, per size (wall seconds, best of RUNS; peak RSS in KiB, the largest seen;
# both from `/usr/bin/time -f '%e %M'`, so times have a 10 ms resolution):
#   openssl dgst -sha256 FILE                     (the floor: one plain SHA-256 pass)
#   codeseal sign --key file:KEY --cert CHAIN FILE -o OUT --force
#   osslsigncode sign -certs CHAIN -key KEY -h sha256 -in FILE -out OUT2
#   codeseal verify OUT
#   osslsigncode verify -CAfile root.pem -in OUT2
# then the ratios codeseal/peer and codeseal sign's peak RSS at the smallest vs the largest
# size (streaming signing: it must not grow with the file).
#
# How the big PE files are made (GEN):
#   section  a real PE32+ with one big initialized section: a small C program whose
#            `.bigdata` section `.incbin`s SIZE MiB of pseudo-random bytes, built with
#            x86_64-w64-mingw32-gcc (a few seconds for 256 MiB: the assembler copies bytes).
#   overlay  the stripped pe64.exe fixture + SIZE MiB of pseudo-random overlay (data after
#            the last section, which Authenticode hashes too). A fallback without a compiler.
#
# Everything (test PKI, fixtures, big files, outputs) lives in a temp dir removed on exit;
# nothing is written to the repository except the release build in the target directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -gt 0 ]]; then
  SIZES="$*"
fi
SIZES="${SIZES:-16 256}"
RUNS="${RUNS:-3}"
GEN="${GEN:-section}"

die() { echo "compare.sh: $*" >&2; exit 1; }
warn() { echo "WARNING: $*"; }

read -r -a SIZE_LIST <<<"$SIZES"
[[ ${#SIZE_LIST[@]} -gt 0 ]] || die "no sizes given"
for s in "${SIZE_LIST[@]}"; do
  [[ "$s" =~ ^[1-9][0-9]*$ ]] || die "size must be a positive whole number of MiB: $s"
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number: $RUNS"
[[ "$GEN" == section || "$GEN" == overlay ]] || die "GEN must be section or overlay: $GEN"

# --- tools ----------------------------------------------------------------------------

TIME=/usr/bin/time
if [[ ! -x "$TIME" ]]; then
  echo "compare.sh: $TIME missing; installing the 'time' package"
  if [[ "$(id -u)" -eq 0 ]]; then
    apt-get install -y -qq time >/dev/null
  else
    sudo apt-get install -y -qq time >/dev/null
  fi
fi
tools=(openssl osslsigncode cargo)
[[ "$GEN" == section ]] && tools+=(x86_64-w64-mingw32-gcc)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/setup.sh)"
done

echo "== building codeseal (release)"
(cd "$ROOT" && cargo build --release --quiet -p codeseal)
CODESEAL="${CARGO_TARGET_DIR:-$ROOT/target}/release/codeseal"
[[ -x "$CODESEAL" ]] || die "$CODESEAL not found after the build"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== test PKI and base fixture (scripts/test-env.sh)"
bash "$ROOT/scripts/test-env.sh" "$WORK/env" >/dev/null
PKI="$WORK/env/pki"
BASE_PE="$WORK/env/fixtures/pe64.exe"
KEY="$PKI/leaf-rsa2048.key"
CHAIN="$PKI/leaf-rsa2048-chain.pem"
ROOT_CA="$PKI/root.pem"

# --- big PE generator -----------------------------------------------------------------

# gen_pe SIZE_MIB OUT
gen_pe() {
  local mib="$1" out="$2" dir="$WORK/gen"
  mkdir -p "$dir"
  if [[ "$GEN" == overlay ]]; then
    cp "$BASE_PE" "$out"
    head -c "$((mib << 20))" /dev/urandom >>"$out"
    return
  fi
  head -c "$((mib << 20))" /dev/urandom >"$dir/blob.bin"
  cat >"$dir/big.c" <<'EOF'
/* One big initialized, read-only section filled from blob.bin by the assembler. */
__asm__(".section .bigdata,\"dr\"\n"
        ".p2align 4\n"
        ".globl codeseal_bench_blob\n"
        "codeseal_bench_blob:\n"
        ".incbin \"blob.bin\"\n"
        ".text\n");
extern const unsigned char codeseal_bench_blob[];

int main(int argc, char **argv)
{
    (void)argv;
    return codeseal_bench_blob[argc * 4093];
}
EOF
  (cd "$dir" && x86_64-w64-mingw32-gcc -Os -s -Wl,--no-insert-timestamp -o big.exe big.c)
  mv "$dir/big.exe" "$out"
  rm -f "$dir/blob.bin"
}

# --- measuring ------------------------------------------------------------------------

declare -A WALL RSS
ROWS=()

# measure SIZE LABEL [--rm FILE] CMD...   (best wall time and largest peak RSS of RUNS runs)
measure() {
  local size="$1" label="$2" rmfile="" i e m best="" peak=0 tf="$WORK/time.txt"
  shift 2
  if [[ "$1" == --rm ]]; then
    rmfile="$2"
    shift 2
  fi
  for ((i = 0; i < RUNS; i++)); do
    [[ -n "$rmfile" ]] && rm -f "$rmfile"
    if ! "$TIME" -f '%e %M' -o "$tf" "$@" >"$WORK/cmd.out" 2>&1; then
      cat "$WORK/cmd.out" >&2
      die "$label failed at ${size} MiB: $*"
    fi
    read -r e m <"$tf"
    if [[ -z "$best" ]] || awk -v a="$e" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best="$e"
    fi
    ((m > peak)) && peak="$m"
  done
  WALL["$size|$label"]="$best"
  RSS["$size|$label"]="$peak"
  ROWS+=("$size|$label")
}

# ratio A B -> "A/B" with two decimals, or n/a when B is below the timer's resolution
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# --- run ------------------------------------------------------------------------------

for size in "${SIZE_LIST[@]}"; do
  in="$WORK/big-${size}.exe"
  out="$WORK/big-${size}-codeseal.exe"
  out2="$WORK/big-${size}-osslsigncode.exe"

  echo "== ${size} MiB: generating ($GEN)"
  gen_pe "$size" "$in"

  # Interoperability first: codeseal's output must satisfy osslsigncode (and the reverse).
  "$CODESEAL" sign --key "file:$KEY" --cert "$CHAIN" "$in" -o "$out" --force >/dev/null
  if ! osslsigncode verify -CAfile "$ROOT_CA" -in "$out" >"$WORK/check.out" 2>&1 ||
    ! grep -q '^Succeeded' "$WORK/check.out"; then
    warn "${size} MiB: osslsigncode does not verify codeseal's output"
    sed 's/^/    /' "$WORK/check.out" | tail -n 5
  fi
  rm -f "$out2"
  osslsigncode sign -certs "$CHAIN" -key "$KEY" -h sha256 -in "$in" -out "$out2" >/dev/null
  if ! "$CODESEAL" verify "$out2" >"$WORK/check.out" 2>&1; then
    warn "${size} MiB: codeseal verify rejects osslsigncode's output"
    sed 's/^/    /' "$WORK/check.out" | tail -n 5
  fi

  echo "== ${size} MiB: timing (best of $RUNS)"
  measure "$size" "openssl dgst" openssl dgst -sha256 "$in"
  measure "$size" "codeseal sign" \
    "$CODESEAL" sign --key "file:$KEY" --cert "$CHAIN" "$in" -o "$out" --force
  measure "$size" "osslsigncode sign" --rm "$out2" \
    osslsigncode sign -certs "$CHAIN" -key "$KEY" -h sha256 -in "$in" -out "$out2"
  measure "$size" "codeseal verify" "$CODESEAL" verify "$out"
  measure "$size" "osslsigncode verify" osslsigncode verify -CAfile "$ROOT_CA" -in "$out2"

  rm -f "$in" "$out" "$out2"
done

# --- report ---------------------------------------------------------------------------

echo
echo "codeseal vs peers on generated PE files (GEN=$GEN, best of $RUNS, $(nproc) CPUs)"
printf '%9s  %-20s %9s %10s %14s\n' "size" "tool verb" "wall s" "MiB/s" "peak RSS KiB"
for row in "${ROWS[@]}"; do
  size="${row%%|*}"
  label="${row#*|}"
  printf '%5s MiB  %-20s %9s %10s %14s\n' "$size" "$label" "${WALL[$row]}" \
    "$(awk -v s="$size" -v t="${WALL[$row]}" 'BEGIN { if (t + 0 > 0) printf "%.0f", s / t; else printf "n/a" }')" \
    "${RSS[$row]}"
done

echo
printf '%9s  %22s %26s %28s\n' "size" "sign / openssl dgst" "sign / osslsigncode sign" "verify / osslsigncode verify"
for size in "${SIZE_LIST[@]}"; do
  printf '%5s MiB  %22s %26s %28s\n' "$size" \
    "$(ratio "${WALL[$size|codeseal sign]}" "${WALL[$size|openssl dgst]}")" \
    "$(ratio "${WALL[$size|codeseal sign]}" "${WALL[$size|osslsigncode sign]}")" \
    "$(ratio "${WALL[$size|codeseal verify]}" "${WALL[$size|osslsigncode verify]}")"
done
echo "(ratios are codeseal's time / the peer's: below 1 means codeseal is faster)"

small="${SIZE_LIST[0]}"
large="${SIZE_LIST[0]}"
for s in "${SIZE_LIST[@]}"; do
  ((s < small)) && small="$s"
  ((s > large)) && large="$s"
done
rss_small="${RSS[$small|codeseal sign]}"
rss_large="${RSS[$large|codeseal sign]}"
echo
# Constant memory: allow 25% + 2 MiB of noise (allocator, page cache accounting).
if ((rss_large <= rss_small + rss_small / 4 + 2048)); then
  verdict="does not grow with file size"
else
  verdict="GROWS with file size"
fi
echo "codeseal sign peak RSS: ${rss_small} KiB at ${small} MiB, ${rss_large} KiB at ${large} MiB: ${verdict}"
