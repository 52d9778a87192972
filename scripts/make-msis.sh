#!/usr/bin/env bash
# Build the Windows Installer (.msi) fixtures with Debian's wixl (msitools; scripts/setup.sh
# installs it).
#
#   usage: scripts/make-msis.sh OUTDIR
#
# Produces in OUTDIR:
#   one.msi      one component, one file
#   several.msi  6 components in nested directories (12 files), two features
#   large.msi    one 40 MiB file of generated (incompressible) content
#   msis.txt     the fixture names, one per line (written last)
#
# The content is generated (AES-CTR keystream from openssl, fixed key); product and
# component GUIDs are fixed.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUTDIR="$1"
command -v wixl >/dev/null 2>&1 || { echo "$0: wixl not found (run scripts/setup.sh)" >&2; exit 1; }
command -v msiinfo >/dev/null 2>&1 || { echo "$0: msiinfo not found (run scripts/setup.sh)" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "$0: openssl not found (run scripts/setup.sh)" >&2; exit 1; }

mkdir -p "$OUTDIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-msis.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
die() { echo "$0: $*" >&2; exit 1; }

gen() { # gen SEED BYTES
  head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -K "$(printf '%032x' "$1")" -iv 00000000000000000000000000000000
}
guid() { printf '5EA1C0DE-0000-4000-8000-%012d' "$1"; }

# product NAME ID BODY FEATURES: a WiX source with one Product.
product() {
  cat <<WXS
<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="$(guid "$2")" Name="codeseal $1" Language="1033" Version="1.0.0"
           Manufacturer="codeseal tests" UpgradeCode="$(guid $(($2 + 1)))">
    <Package InstallerVersion="200" Compressed="yes" Comments="codeseal test fixture"/>
    <Media Id="1" Cabinet="data.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="codeseal-$1">
$3
        </Directory>
      </Directory>
    </Directory>
$4
  </Product>
</Wix>
WXS
}

cd "$WORK"
printf 'Hello from a codeseal installer fixture.\r\n' >readme.txt
product one 100 "          <Component Id=\"Readme\" Guid=\"$(guid 101)\"><File Id=\"readme\" Source=\"readme.txt\"/></Component>" \
  '    <Feature Id="Main" Level="1"><ComponentRef Id="Readme"/></Feature>' >one.wxs

body=""
refs_a=""
refs_b=""
for i in $(seq 1 6); do
  gen $((20 + i)) $((i * 2500 + 31)) >"part$i.bin"
  printf 'document %d\r\n' "$i" >"doc$i.txt"
  body+="          <Directory Id=\"D$i\" Name=\"dir$i\"><Directory Id=\"S$i\" Name=\"sub\">
            <Component Id=\"C$i\" Guid=\"$(guid $((200 + i)))\">
              <File Id=\"p$i\" Source=\"part$i.bin\"/><File Id=\"d$i\" Source=\"doc$i.txt\"/>
            </Component></Directory></Directory>
"
  if (( i <= 3 )); then refs_a+="<ComponentRef Id=\"C$i\"/>"; else refs_b+="<ComponentRef Id=\"C$i\"/>"; fi
done
product several 300 "$body" "    <Feature Id=\"A\" Level=\"1\">$refs_a</Feature>
    <Feature Id=\"B\" Level=\"1\">$refs_b</Feature>" >several.wxs

gen 99 $((40 * 1024 * 1024)) >large.bin
product large 400 "          <Component Id=\"Big\" Guid=\"$(guid 401)\"><File Id=\"big\" Source=\"large.bin\"/></Component>" \
  '    <Feature Id="Main" Level="1"><ComponentRef Id="Big"/></Feature>' >large.wxs

MSIS=(one.msi several.msi large.msi)
for f in "${MSIS[@]}"; do
  wixl -o "$f" "${f%.msi}.wxs" || die "wixl failed on ${f%.msi}.wxs"
  [[ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" == d0cf11e0a1b11ae1 ]] || die "$f: no compound-file header"
  msiinfo tables "$f" >/dev/null || die "$f: msiinfo cannot read it"
done
[[ "$(msiinfo export several.msi File | tail -n +4 | wc -l)" == 12 ]] || die "several.msi: expected 12 files"
(( $(stat -c %s large.msi) > 40 * 1024 * 1024 )) || die "large.msi: too small"

rm -f "$OUTDIR/msis.txt"
for f in "${MSIS[@]}"; do
  cp "$f" "$OUTDIR/$f"
done
printf '%s\n' "${MSIS[@]}" >"$OUTDIR/msis.txt.tmp"
mv "$OUTDIR/msis.txt.tmp" "$OUTDIR/msis.txt"
for f in "${MSIS[@]}"; do
  printf 'msi: %-12s %9d bytes\n' "$f" "$(stat -c %s "$OUTDIR/$f")"
done
