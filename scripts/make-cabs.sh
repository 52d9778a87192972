#!/usr/bin/env bash
# Build the cabinet (.cab) fixtures with Debian's gcab (scripts/setup.sh installs it).
#
#   usage: scripts/make-cabs.sh OUTDIR
#
# Produces in OUTDIR:
#   stored.cab   two files (text, binary), stored (no compression)
#   mszip.cab    the same files and a compressible text, MSZIP (gcab -z)
#   several.cab  24 files in nested folders (paths kept), MSZIP
#   large.cab    one 40 MiB file of generated (incompressible) content, stored
#   cabs.txt     the fixture names, one per line (written last)
#
# The content is generated (AES-CTR keystream from openssl, fixed key) and every file's
# time is fixed, so the cabinets are the same on every run.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR="$1"
command -v gcab >/dev/null 2>&1 || { echo "$0: gcab not found (run scripts/setup.sh)" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "$0: openssl not found (run scripts/setup.sh)" >&2; exit 1; }

mkdir -p "$OUTDIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-cabs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
die() { echo "$0: $*" >&2; exit 1; }

# N bytes of pseudo-random content, the same every time for the same SEED.
gen() { # gen SEED BYTES
  head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -K "$(printf '%032x' "$1")" -iv 00000000000000000000000000000000
}
stamp() { find "$@" -exec touch -h -d '2024-01-02 03:04:05 UTC' {} +; }

mkdir -p "$WORK/small" "$WORK/tree/docs/en" "$WORK/tree/bin" "$WORK/big"
printf 'Hello from a codeseal cabinet fixture.\r\n' >"$WORK/small/readme.txt"
gen 1 70000 >"$WORK/small/payload.bin"
for i in $(seq 1 400); do printf 'line %04d: the quick brown fox jumps over the lazy dog\n' "$i"; done \
  >"$WORK/small/notes.txt"
for i in $(seq 1 8); do
  gen $((10 + i)) $((i * 3000 + 17)) >"$WORK/tree/bin/part$i.bin"
  printf 'document %d\n' "$i" >"$WORK/tree/docs/doc$i.txt"
  printf 'English document %d\n' "$i" >"$WORK/tree/docs/en/doc$i.txt"
done
gen 99 $((40 * 1024 * 1024)) >"$WORK/big/large.bin"
stamp "$WORK/small" "$WORK/tree" "$WORK/big"

(cd "$WORK/small" && gcab -c -n "$WORK/stored.cab" readme.txt payload.bin)
(cd "$WORK/small" && gcab -c -n -z "$WORK/mszip.cab" readme.txt payload.bin notes.txt)
(cd "$WORK/tree" && gcab -c -z "$WORK/several.cab" bin/*.bin docs/*.txt docs/en/*.txt)
(cd "$WORK/big" && gcab -c -n "$WORK/large.cab" large.bin)

CABS=(stored.cab mszip.cab several.cab large.cab)
for f in "${CABS[@]}"; do
  [[ "$(head -c 4 "$WORK/$f")" == MSCF ]] || die "$f: no MSCF header"
  gcab -t "$WORK/$f" >/dev/null || die "$f: gcab cannot list it"
done
[[ "$(gcab -t "$WORK/several.cab" | wc -l)" == 24 ]] || die "several.cab: expected 24 files"
(( $(stat -c %s "$WORK/large.cab") > 40 * 1024 * 1024 )) || die "large.cab: too small"

rm -f "$OUTDIR/cabs.txt"
for f in "${CABS[@]}"; do
  cp "$WORK/$f" "$OUTDIR/$f"
done
printf '%s\n' "${CABS[@]}" >"$OUTDIR/cabs.txt.tmp"
mv "$OUTDIR/cabs.txt.tmp" "$OUTDIR/cabs.txt"
for f in "${CABS[@]}"; do
  printf 'cab: %-12s %9d bytes\n' "$f" "$(stat -c %s "$OUTDIR/$f")"
done
