#!/usr/bin/env bash
# Build the seed corpora of the fuzz targets (fuzz/fuzz_targets/) in fuzz/corpus/<target>/.
#
#   usage: scripts/make-fuzz-corpus.sh [--force]
#
# Seeds come from the project's PE fixtures and test PKI (scripts/test-env.sh), the bundled
# sample PE, files signed here with codeseal (RSA and P-256, page hashes, nested SHA-512,
# the fuzz PKI in fuzz/pki/) and osslsigncode (with its built-in TSA: RFC 3161 time stamps),
# the certificate tables and PKCS#7 signatures extracted from them, RFC 3161 tokens and
# replies made with `openssl ts` (over the fixed imprint and nonce the timestamp_token target
# checks), public keys, private keys and signatures of the test PKI, and key URIs.
# Only small files are kept (FUZZ_MAX_SEED_BYTES, default 64 KiB).
#
# fuzz/corpus/ is gitignored and grows as the fuzzer saves new inputs; without --force an
# existing corpus is left as it is (the marker fuzz/corpus/.seeded says it was made); --force
# replaces the seeds (files named seed-*) and keeps what the fuzzer added.
# The committed, hand-made cases are in fuzz/regressions/ (scripts/fuzz-smoke.sh reads both).
#
# Needs: bash, coreutils, xxd, openssl; the codeseal CLI (CODESEAL_BIN, else target/debug/codeseal,
# built if missing); osslsigncode (optional: without it, no time-stamped signed files).
# Env: CODESEAL_TEST_ENV (default target/test-env), FUZZ_CORPUS_DIR (default fuzz/corpus).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${FUZZ_CORPUS_DIR:-$ROOT/fuzz/corpus}"
MAX="${FUZZ_MAX_SEED_BYTES:-65536}"
TE="${CODESEAL_TEST_ENV:-$ROOT/target/test-env}"
FPKI="$ROOT/fuzz/pki"
TARGETS=(pe_headers wincert_table pkcs7_signature verify_file timestamp_token key_decoding sign_roundtrip script_parse cab_header msi_walk)

if [[ "${1:-}" != "--force" && -f "$OUT/.seeded" ]]; then
  echo "make-fuzz-corpus: $OUT already seeded (use --force to redo)"
  exit 0
fi
[[ $# -le 1 && ( $# -eq 0 || "$1" == "--force" ) ]] || { echo "usage: $0 [--force]" >&2; exit 2; }

bash "$ROOT/scripts/test-env.sh" "$TE" >/dev/null
FIX="$TE/fixtures"
PKI="$TE/pki"

CODESEAL="${CODESEAL_BIN:-$ROOT/target/debug/codeseal}"
if [[ ! -x "$CODESEAL" ]]; then
  echo "make-fuzz-corpus: building the codeseal CLI"
  (cd "$ROOT" && cargo build -q -p codeseal --bin codeseal)
  CODESEAL="$ROOT/target/debug/codeseal"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
for t in "${TARGETS[@]}"; do
  mkdir -p "$OUT/$t"
  rm -f "$OUT/$t"/seed-* # earlier seeds; inputs the fuzzer added stay
done

# seed TARGET FILE [NAME]: copy FILE into TARGET's corpus if it is small enough.
seed() {
  local t="$1" f="$2" name="${3:-$(basename "$2")}"
  [[ -s "$f" ]] || return 0
  (( $(stat -c %s "$f") <= MAX )) || return 0
  cp "$f" "$OUT/$t/seed-$name"
}
# seed_text TARGET NAME TEXT
seed_text() { printf '%s' "$3" >"$OUT/$2.tmp" && mv "$OUT/$2.tmp" "$OUT/$1/seed-$2"; }

u16() { od -An -t u2 -j "$2" -N 2 "$1" | tr -d ' \n'; }
u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' \n'; }
# cert_table PE OUT: the certificate table bytes of a signed PE.
cert_table() {
  local f="$1" pe magic dirs sec off size
  pe=$(u32 "$f" 60)
  magic=$(u16 "$f" $((pe + 24)))
  if [[ "$magic" == 523 ]]; then dirs=112; else dirs=96; fi
  sec=$((pe + 24 + dirs + 32))
  off=$(u32 "$f" "$sec")
  size=$(u32 "$f" $((sec + 4)))
  (( size > 0 )) || return 1
  dd if="$f" of="$2" bs=65536 iflag=skip_bytes,count_bytes skip="$off" count="$size" status=none
}

# --- unsigned PE files
inputs=()
for f in "$FIX"/*.exe "$FIX"/*.dll "$ROOT/cli/assets/sample.exe"; do
  [[ -f "$f" ]] || continue
  seed pe_headers "$f"
  seed verify_file "$f" "unsigned-$(basename "$f")"
  (( $(stat -c %s "$f") <= MAX )) && inputs+=("$f")
done

# --- signed with codeseal: several keys and options
signed=()
sign() { # sign NAME INPUT KEY CHAIN [OPTIONS...]
  local name="$1" in="$2" key="$3" chain="$4"
  shift 4
  if "$CODESEAL" sign --key "$key" --cert "$chain" --force -o "$WORK/$name" "$@" "$in" >/dev/null 2>"$WORK/$name.err"; then
    signed+=("$WORK/$name")
  else
    echo "make-fuzz-corpus: signing $name failed: $(head -c 300 "$WORK/$name.err")" >&2
  fi
}
for f in "${inputs[@]}"; do
  b="$(basename "$f")"
  sign "p256-$b" "$f" "$PKI/leaf-p256.key" "$PKI/leaf-p256-chain.pem"
  sign "rsa-ph-$b" "$f" "$PKI/leaf-rsa2048.key" "$PKI/leaf-rsa2048-chain.pem" --page-hashes -n "codeseal fuzz" -i https://example.invalid/
  sign "fuzzpki-$b" "$f" "$FPKI/leaf.key" "$FPKI/leaf-chain.pem"
done
first="${inputs[0]:-}"
if [[ -n "$first" ]]; then
  b="$(basename "$first")"
  sign "sha1-ph-$b" "$first" "$PKI/leaf-rsa2048.key" "$PKI/leaf-rsa2048-chain.pem" --digest sha1 --allow-sha1 --page-hashes
  sign "nested-$b" "$WORK/p256-$b" "$PKI/leaf-rsa2048.key" "$PKI/leaf-rsa2048-chain.pem" --append --digest sha512
  sign "expired-$b" "$first" "$PKI/leaf-expired.key" "$PKI/leaf-expired-chain.pem"
fi

# --- signed and time-stamped with osslsigncode's built-in TSA (no network)
if command -v osslsigncode >/dev/null; then
  for f in "${inputs[@]:0:3}"; do
    b="$(basename "$f")"
    for tsa in "$PKI/tsa" "$FPKI/tsa"; do
      if [[ "$tsa" == "$FPKI"/* ]]; then label=fuzzpki; else label=testpki; fi
      o="$WORK/ossl-ts-$label-$b"
      if osslsigncode sign -certs "$PKI/leaf-rsa2048-chain.pem" -key "$PKI/leaf-rsa2048.key" -h sha256 \
        -TSA-certs "$tsa-chain.pem" -TSA-key "$tsa.key" -TSA-time 1700000000 \
        -in "$f" -out "$o" >/dev/null 2>&1; then
        signed+=("$o")
      fi
    done
    o="$WORK/ossl-ph-$b"
    osslsigncode sign -certs "$PKI/leaf-p256-chain.pem" -key "$PKI/leaf-p256.key" -h sha384 -ph \
      -in "$f" -out "$o" >/dev/null 2>&1 && signed+=("$o")
  done
else
  echo "make-fuzz-corpus: no osslsigncode: skipping time-stamped seeds" >&2
fi

for s in "${signed[@]}"; do
  b="$(basename "$s")"
  seed verify_file "$s"
  seed pe_headers "$s" "signed-$b"
  cert_table "$s" "$WORK/$b.table" && seed wincert_table "$WORK/$b.table" "$b.table"
  "$CODESEAL" extract -o "$WORK/$b.p7" "$s" >/dev/null 2>&1 && seed pkcs7_signature "$WORK/$b.p7" "$b.p7"
done

# --- RFC 3161 tokens and replies (openssl ts), over the fixed imprint SHA-256("codeseal fuzz")
# and nonce 0x0123456789abcdef that the timestamp_token target checks in its second pass.
imprint="$(printf 'codeseal fuzz' | sha256sum | cut -d' ' -f1)"
printf '30430201013031300d060960864801650304020105000420%s02080123456789abcdef0101ff' "$imprint" \
  | xxd -r -p >"$WORK/fixed.tsq"
openssl ts -query -data "$ROOT/fuzz/pki/root.pem" -sha384 -no_nonce -cert -out "$WORK/sha384.tsq" 2>/dev/null
openssl ts -query -data "$ROOT/fuzz/pki/root.pem" -sha1 -out "$WORK/sha1.tsq" 2>/dev/null
tsa_conf() { # tsa_conf DIR KEYPREFIX ESS_ALG
  cat <<EOF
[tsa]
default_tsa = t
[t]
serial = $WORK/tsaserial
signer_cert = $2.pem
certs = $2-chain.pem
signer_key = $2.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha1, sha256, sha384, sha512
accuracy = secs:1, millisecs:500
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = $3
EOF
}
echo 01 >"$WORK/tsaserial"
n=0
# (openssl ts refuses to sign with tsa-noncrit: its timeStamping EKU is not critical.)
for tsa in "$FPKI/tsa" "$PKI/tsa"; do
  for ess in sha256 sha1; do
    tsa_conf "$WORK" "$tsa" "$ess" >"$WORK/tsa.cnf"
    for q in fixed sha384 sha1; do
      n=$((n + 1))
      openssl ts -reply -queryfile "$WORK/$q.tsq" -config "$WORK/tsa.cnf" -token_out \
        -out "$WORK/token-$n.der" >/dev/null 2>&1 && seed timestamp_token "$WORK/token-$n.der" "token-$q-$ess-$n"
      openssl ts -reply -queryfile "$WORK/$q.tsq" -config "$WORK/tsa.cnf" \
        -out "$WORK/reply-$n.tsr" >/dev/null 2>&1 && seed timestamp_token "$WORK/reply-$n.tsr" "reply-$q-$ess-$n"
    done
  done
done

# --- key material: SPKIs, private keys (PKCS#8 DER, PEM), signatures, URIs
for c in "$PKI"/*.pem "$FPKI"/root.pem "$FPKI"/leaf.pem "$FPKI"/tsa.pem; do
  [[ "$c" == *chain.pem ]] && continue
  b="$(basename "$c" .pem)"
  openssl x509 -in "$c" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER -out "$WORK/$b.spki" 2>/dev/null \
    && seed key_decoding "$WORK/$b.spki" "spki-$b"
done
for k in "$PKI"/leaf-p256.key "$PKI"/leaf-rsa2048.key "$PKI"/leaf-p256-sec1.key "$PKI"/leaf-rsa2048-pkcs1.key "$FPKI"/leaf.key; do
  b="$(basename "$(dirname "$k")")-$(basename "$k" .key)"
  seed key_decoding "$k" "pem-$b"
  openssl pkcs8 -topk8 -nocrypt -in "$k" -outform DER -out "$WORK/$b.p8" 2>/dev/null && seed key_decoding "$WORK/$b.p8" "pkcs8-$b"
  printf 'codeseal fuzz' | openssl dgst -sha256 -sign "$k" -out "$WORK/$b.sig" 2>/dev/null && seed key_decoding "$WORK/$b.sig" "sig-$b"
done
seed_text key_decoding kms-alias 'awskms:///alias/release-signing'
seed_text key_decoding kms-endpoint 'awskms://localhost:4566/alias/x'
seed_text key_decoding kms-alias-arn 'arn:aws:kms:eu-west-1:111122223333:alias/release'
seed_text key_decoding kms-key-id '1234abcd-12ab-34cd-56ef-1234567890ab'
seed_text key_decoding pkcs11-full 'pkcs11:token=codeseal%20test;manufacturer=SoftHSM;serial=0123;model=SoftHSM%20v2;library-manufacturer=x;library-description=y;library-version=2.6;slot-id=7;slot-description=s;slot-manufacturer=m;object=leaf;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&module-name=softhsm2&pin-source=file:/tmp/pin'
seed_text key_decoding pkcs11-pin 'pkcs11:object=k?pin-value=12%2034&x-vendor=1'
seed_text key_decoding file-uri 'file:///keys/leaf.p12?password-file=/run/pass'

# --- sign_roundtrip: flags byte, section count, patch records (see fuzzing::sign_roundtrip)
for flags in 00 01 02 03 04 08 0c 0e 10 60 63; do
  for sections in 00 01 03; do
    printf '%s%s' "$flags" "$sections" | xxd -r -p >"$OUT/sign_roundtrip/seed-$flags-$sections"
  done
done
printf '\x02\x02\x04\x50\x02\xde\xad\xbe\xef\x83overlay' >"$OUT/sign_roundtrip/seed-patch-overlay"

# --- script_parse: every script kind in UTF-8, UTF-8 with a BOM, UTF-16LE and Windows-1252,
# unsigned and signed (osslsigncode for the PowerShell family and MOF; the newer osslsigncode
# that scripts/setup.sh builds, when present, for JScript; VBScript and WSF get the PKCS#7 of a
# signed .ps1 in their own block markers), plus a truncated block and markers inside a string.
SD="$WORK/scripts"
mkdir -p "$SD"
declare -A SCRIPT_TEXT=(
  [ps1]=$'param([string]$Name = \'x\')\r\nWrite-Host "Gr\xc3\xbc\xc3\x9fe $Name \xe2\x82\xac"\r\n$s = @\'\r\n# SIG # Begin signature block\r\n\'@\r\n'
  [psd1]=$'@{ ModuleVersion = \'1.0\'; Description = \'caf\xc3\xa9\' }\n'
  [ps1xml]=$'<?xml version="1.0" encoding="utf-8"?>\r\n<Types><Type><Name>System.String</Name></Type></Types>\r\n'
  [mof]=$'#pragma namespace("\\\\\\\\.\\\\root\\\\cimv2")\r\nclass Demo { [key] string Name; };\r\n'
  [js]=$'var s = "h\xc3\xa9llo";\r\n// SIG // Begin signature block\r\nWScript.Echo(s);\r\n'
  [vbs]=$'Dim s\r\ns = "h\xc3\xa9llo"\r\nWScript.Echo s\r\n'
  [wsf]=$'<package>\r\n<job id="a">\r\n<script language="VBScript">WScript.Echo "h\xc3\xa9"</script>\r\n</job>\r\n</package>\r\n'
)
OSSL_NEW="${CODESEAL_OSSLSIGNCODE_NEW:-$HOME/.cache/codeseal/osslsigncode-2.14/bin/osslsigncode}"
for ext in "${!SCRIPT_TEXT[@]}"; do
  printf '%s' "${SCRIPT_TEXT[$ext]}" >"$SD/utf8.$ext"
  { printf '\xef\xbb\xbf'; cat "$SD/utf8.$ext"; } >"$SD/utf8bom.$ext"
  { printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$SD/utf8.$ext"; } >"$SD/utf16.$ext"
  iconv -f UTF-8 -t WINDOWS-1252 "$SD/utf8.$ext" >"$SD/cp1252.$ext" 2>/dev/null || rm -f "$SD/cp1252.$ext"
  for enc in utf8 utf8bom utf16 cp1252; do
    f="$SD/$enc.$ext"
    [[ -f "$f" ]] || continue
    seed script_parse "$f" "$enc.$ext"
    bin=""
    case "$ext" in
      ps1|psd1|ps1xml|mof) command -v osslsigncode >/dev/null && bin=osslsigncode ;;
      js) [[ -x "$OSSL_NEW" ]] && bin="$OSSL_NEW" ;;
    esac
    [[ -n "$bin" ]] || continue
    "$bin" sign -certs "$PKI/leaf-p256-chain.pem" -key "$PKI/leaf-p256.key" -h sha256 \
      -in "$f" -out "$SD/signed-$enc.$ext" >/dev/null 2>&1 && seed script_parse "$SD/signed-$enc.$ext" "signed-$enc.$ext"
  done
done
if [[ -f "$SD/signed-utf8.ps1" ]]; then
  # The base64 lines of the signed .ps1's block (its PKCS#7), in VBScript's and WSF's markers.
  sed -n '/^# SIG # Begin signature block/,/^# SIG # End signature block/p' "$SD/signed-utf8.ps1" \
    | tr -d '\r' | sed '1d;$d;s/^# //' >"$SD/b64"
  { cat "$SD/utf8.vbs"; printf "\r\n'' SIG '' Begin signature block\r\n"
    sed "s/^/'' SIG '' /;s/\$/\r/" "$SD/b64"; printf "'' SIG '' End signature block\r\n"; } >"$SD/signed.vbs"
  { printf '<package>\r\n<job id="a">\r\n<script language="VBScript">WScript.Echo "h\xc3\xa9"</script>\r\n'
    printf '<signature>\r\n'; sed 's/^/** SIG ** /;s/$/\r/' "$SD/b64"
    printf '</signature>\r\n</job>\r\n</package>\r\n'; } >"$SD/signed.wsf"
  head -c 900 "$SD/signed-utf8.ps1" >"$SD/truncated.ps1"
  seed script_parse "$SD/signed.vbs"
  seed script_parse "$SD/signed.wsf"
  seed script_parse "$SD/truncated.ps1"
fi

# --- cab_header: small gcab cabinets (stored, MSZIP, a path kept, no file), each also signed
# by osslsigncode when present, and a truncated one.
if command -v gcab >/dev/null; then
  CD="$WORK/cabs"
  mkdir -p "$CD/in/sub"
  printf 'hello cabinet\r\n' >"$CD/in/a.txt"
  for i in $(seq 1 60); do printf 'row %d of a compressible file\n' "$i"; done >"$CD/in/sub/b.txt"
  (cd "$CD/in" && gcab -c -n "$CD/stored.cab" a.txt && gcab -c -z "$CD/mszip.cab" a.txt sub/b.txt)
  for c in stored mszip; do
    seed cab_header "$CD/$c.cab"
    if command -v osslsigncode >/dev/null; then
      osslsigncode sign -certs "$PKI/leaf-p256-chain.pem" -key "$PKI/leaf-p256.key" -h sha256 \
        -in "$CD/$c.cab" -out "$CD/signed-$c.cab" >/dev/null 2>&1 && seed cab_header "$CD/signed-$c.cab"
    fi
  done
  head -c 50 "$CD/mszip.cab" >"$CD/truncated.cab"
  seed cab_header "$CD/truncated.cab"
fi

# --- msi_walk: a small wixl installer, signed by osslsigncode (with -add-msi-dse) when
# present, and a truncated one.
if command -v wixl >/dev/null; then
  MD="$WORK/msis"
  mkdir -p "$MD"
  printf 'hello installer\r\n' >"$MD/a.txt"
  cat >"$MD/a.wxs" <<'WXS'
<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="5EA1C0DE-0000-4000-8000-000000000900" Name="fuzz" Language="1033" Version="1.0.0"
           Manufacturer="codeseal" UpgradeCode="5EA1C0DE-0000-4000-8000-000000000901">
    <Package InstallerVersion="200" Compressed="yes"/>
    <Media Id="1" Cabinet="a.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir"><Directory Id="INSTALLDIR" Name="fuzz">
      <Component Id="A" Guid="5EA1C0DE-0000-4000-8000-000000000902"><File Id="a" Source="a.txt"/></Component>
    </Directory></Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="A"/></Feature>
  </Product>
</Wix>
WXS
  (cd "$MD" && wixl -o "$MD/small.msi" a.wxs)
  seed msi_walk "$MD/small.msi"
  if command -v osslsigncode >/dev/null; then
    osslsigncode sign -certs "$PKI/leaf-p256-chain.pem" -key "$PKI/leaf-p256.key" -h sha256 \
      -add-msi-dse -in "$MD/small.msi" -out "$MD/signed-small.msi" >/dev/null 2>&1 &&
      seed msi_walk "$MD/signed-small.msi"
  fi
  head -c 3000 "$MD/small.msi" >"$MD/truncated.msi"
  seed msi_walk "$MD/truncated.msi"
fi

date -u +%FT%TZ >"$OUT/.seeded"
for t in "${TARGETS[@]}"; do
  printf 'make-fuzz-corpus: %-16s %4d files, %s\n' "$t" "$(find "$OUT/$t" -type f | wc -l)" "$(du -sh "$OUT/$t" | cut -f1)"
done
