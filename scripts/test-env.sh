#!/usr/bin/env bash
# Prepare the external test environment: PE fixtures + throwaway PKI.
#
#   usage: scripts/test-env.sh OUTDIR
#
#   OUTDIR/fixtures/  <- scripts/make-fixtures.sh (list in fixtures/fixtures.txt)
#   OUTDIR/pki/       <- scripts/make-pki.sh      (list in pki/pki.txt)
#   OUTDIR/cabs/      <- scripts/make-cabs.sh     (list in cabs/cabs.txt)
#   OUTDIR/msis/      <- scripts/make-msis.sh     (list in msis/msis.txt)
#   OUTDIR/ready      <- written last, once all are complete
#
# Each part is skipped when it is already complete (its list file exists, every
# listed file is present and non-empty, and it was made by the current version
# of its generator script). Safe to call repeatedly and concurrently (flock).
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR="$1"
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"

exec 9>"$OUTDIR/.lock"
flock 9

# complete DIR LISTFILE GENERATOR
complete() {
  local dir="$1" list="$1/$2" gen="$3" f
  [[ -s "$list" && -f "$dir/.stamp" ]] || return 1
  [[ "$(cat "$dir/.stamp")" == "$(sha256sum <"$gen" | cut -d' ' -f1)" ]] || return 1
  while IFS= read -r f; do
    [[ -z "$f" || -s "$dir/$f" ]] || return 1
  done <"$list"
}

# ensure NAME LISTFILE GENERATOR
ensure() {
  local name="$1" list="$2" gen="$SCRIPTS/$3" dir="$OUTDIR/$1"
  if complete "$dir" "$list" "$gen"; then
    echo "test-env: $name up to date ($dir)"
    return 0
  fi
  rm -f "$OUTDIR/ready"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "test-env: building $name ($dir)"
  bash "$gen" "$dir" >/dev/null
  sha256sum <"$gen" | cut -d' ' -f1 >"$dir/.stamp"
  complete "$dir" "$list" "$gen" || { echo "test-env: $name incomplete after generation" >&2; exit 1; }
}

ensure fixtures fixtures.txt make-fixtures.sh
ensure pki pki.txt make-pki.sh
ensure cabs cabs.txt make-cabs.sh
ensure msis msis.txt make-msis.sh

if [[ ! -f "$OUTDIR/ready" ]]; then
  {
    echo "fixtures=$OUTDIR/fixtures"
    echo "pki=$OUTDIR/pki"
    echo "cabs=$OUTDIR/cabs"
    echo "msis=$OUTDIR/msis"
  } >"$OUTDIR/ready.tmp"
  mv "$OUTDIR/ready.tmp" "$OUTDIR/ready"
fi
echo "test-env: ready ($OUTDIR/ready)"
