#!/usr/bin/env bash
# Build small, byte-reproducible PE fixtures with mingw-w64.
#
#   usage: scripts/make-fixtures.sh OUTDIR
#
# Produces in OUTDIR:
#   pe32.exe pe64.exe     console exes (i686 / x86_64), stripped
#   pe32.dll pe64.dll     DLLs exporting one function, stripped
#   overlay.exe           pe64.exe + 1000 bytes of overlay (data after last section)
#   oddsize.exe           pe64.exe + 3 bytes of overlay (file size % 8 != 0)
#   unstripped.exe        x86_64 exe with a COFF symbol table (PointerToSymbolTable != 0)
#   fixtures.txt          the fixture file names, one per line (written last)
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR="$1"

CC64=x86_64-w64-mingw32-gcc
CC32=i686-w64-mingw32-gcc
for c in "$CC64" "$CC32"; do
  command -v "$c" >/dev/null 2>&1 || { echo "$0: $c not found (run scripts/setup.sh)" >&2; exit 1; }
done

# Reproducibility: no PE timestamp, fixed image base, no absolute paths.
COMMON_FLAGS=(-Os "-Wl,--no-insert-timestamp" "-Wl,--disable-auto-image-base")

mkdir -p "$OUTDIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-fixtures.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/hello.c" <<'EOF'
#include <stdio.h>

int main(void)
{
    puts("hello from a codeseal test fixture");
    return 0;
}
EOF

cat >"$WORK/lib.c" <<'EOF'
__declspec(dllexport) int codeseal_fixture_add(int a, int b)
{
    return a + b;
}
EOF

# --- PE header helpers (little-endian reads with od) ------------------------

u16() { od -An -v -tu2 --endian=little -j "$2" -N 2 "$1" | tr -d ' \n'; }
u32() { od -An -v -tu4 --endian=little -j "$2" -N 4 "$1" | tr -d ' \n'; }

die() { echo "$0: $*" >&2; exit 1; }

# assert_pe FILE MACHINE(dec) MAGIC(dec)
assert_pe() {
  local f="$1" machine="$2" magic="$3" lfanew
  [[ "$(head -c 2 "$f")" == "MZ" ]] || die "$f: no MZ header"
  lfanew="$(u32 "$f" 60)"
  [[ "$(od -An -c -j "$lfanew" -N 4 "$f" | tr -d ' \n')" == 'PE\0\0' ]] || die "$f: no PE signature"
  [[ "$(u16 "$f" $((lfanew + 4)))" == "$machine" ]] || die "$f: unexpected machine"
  [[ "$(u16 "$f" $((lfanew + 24)))" == "$magic" ]] || die "$f: unexpected optional header magic"
}

# PointerToSymbolTable (COFF header offset 8)
symtab_ptr() { u32 "$1" $(( $(u32 "$1" 60) + 12 )); }

# --- build -------------------------------------------------------------------

(
  cd "$WORK"
  "$CC32" "${COMMON_FLAGS[@]}" -s -o pe32.exe hello.c
  "$CC64" "${COMMON_FLAGS[@]}" -s -o pe64.exe hello.c
  "$CC32" "${COMMON_FLAGS[@]}" -s -shared -o pe32.dll lib.c
  "$CC64" "${COMMON_FLAGS[@]}" -s -shared -o pe64.dll lib.c
  "$CC64" "${COMMON_FLAGS[@]}" -o unstripped.exe hello.c

  cp pe64.exe overlay.exe
  { yes 'codeseal overlay data' || true; } | head -c 1000 >>overlay.exe

  cp pe64.exe oddsize.exe
  printf 'ODD' >>oddsize.exe
)

I386=332      # 0x14c
AMD64=34404   # 0x8664
PE32=267      # 0x10b
PE32P=523     # 0x20b

assert_pe "$WORK/pe32.exe" $I386 $PE32
assert_pe "$WORK/pe32.dll" $I386 $PE32
for f in pe64.exe pe64.dll overlay.exe oddsize.exe unstripped.exe; do
  assert_pe "$WORK/$f" $AMD64 $PE32P
done

for f in pe32.exe pe64.exe pe32.dll pe64.dll; do
  [[ "$(symtab_ptr "$WORK/$f")" == 0 ]] || die "$f: expected stripped (PointerToSymbolTable == 0)"
done
[[ "$(symtab_ptr "$WORK/unstripped.exe")" != 0 ]] || die "unstripped.exe: PointerToSymbolTable == 0"

size_of() { stat -c %s "$1"; }
(( $(size_of "$WORK/overlay.exe") == $(size_of "$WORK/pe64.exe") + 1000 )) || die "overlay.exe: bad size"
(( $(size_of "$WORK/oddsize.exe") % 8 != 0 )) || die "oddsize.exe: size is a multiple of 8"

FIXTURES=(pe32.exe pe64.exe pe32.dll pe64.dll overlay.exe oddsize.exe unstripped.exe)
rm -f "$OUTDIR/fixtures.txt"
for f in "${FIXTURES[@]}"; do
  cp "$WORK/$f" "$OUTDIR/$f"
done
printf '%s\n' "${FIXTURES[@]}" >"$OUTDIR/fixtures.txt.tmp"
mv "$OUTDIR/fixtures.txt.tmp" "$OUTDIR/fixtures.txt"

for f in "${FIXTURES[@]}"; do
  printf 'fixture: %-15s %6d bytes\n' "$f" "$(size_of "$OUTDIR/$f")"
done
