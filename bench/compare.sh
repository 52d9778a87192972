#!/usr/bin/env bash
# Compare codeseal with its peers on large generated PE files, cabinets and installers, in one run.
#
#   usage: bench/compare.sh [SIZE_MIB...]        (default: $SIZES, or "16 256 1024")
#   env:   SIZES="16 256 1024"  PE sizes in MiB (arguments win; "" skips PE files); a size whose files would
#                               not fit in the free space of the temp dir is skipped, loudly
#          CAB_SIZES="16 64"    cabinet sizes in MiB (one stored file of pseudo-random bytes
#                               in a cabinet made by Debian's gcab); "" skips cabinets
#          MSI_SIZES="16 64"    installer sizes in MiB (one file of pseudo-random bytes in an
#                               MSI made by Debian's wixl, its cabinet embedded); "" skips them
#          APPX_SIZES="32"      APPX package sizes in MiB (scripts/make-appx.py: one file of
#                               pseudo-random bytes deflated block by block, an exact block
#                               map); "" skips them. "32 256" also checks that codeseal's
#                               peak RSS does not grow with the package (streamed reader)
#          RUNS=5               timed runs per command; the best wall time is kept
#          GEN=section          how big PEs are made: "section" (default) or "overlay"
#          DIRECT=1             also time codeseal sign with CODESEAL_DIRECT_IO=1 (the copy's
#                               bulk through an O_DIRECT handle; opt-in, see docs/performance.md)
#          CODESEAL_BIN=PATH    time this codeseal binary instead of building the tree's
#                               (e.g. an older build, for a before/after comparison)
#          BATCH_FILES=300      the batch row: this many small PEs (copies of the pe64.exe
#                               fixture, each made distinct by 4 bytes of overlay) signed by
#                               one `codeseal sign --out-dir` against an osslsigncode
#                               per-file loop; 3000 for the large row; "" or 0 skips it
#          BATCH_KEYS="rsa2048 rsa4096 p256"  the test PKI leaves the batch row signs with
#          BATCH_RUNS=3         timed runs per batch command (best kept)
#          BATCH_RUSTCRYPTO=1   also time the batch with CODESEAL_CRYPTO_PROVIDER=rustcrypto
#                               (local keys through the pure-Rust crates: the "before")
#
# What is timed, per size (wall seconds, best of RUNS, measured by bash's EPOCHREALTIME around
# the command, so 1 ms resolution; peak RSS in KiB, the largest seen, from
# `/usr/bin/time -f %M`, which is what `/usr/bin/time -v` prints as "Maximum resident set
# size"):
#   openssl dgst -sha256 FILE                     (the floor of verify: one plain SHA-256 pass)
#   dd if=FILE of=COPY bs=1M conv=fsync           (the floor of sign: a durable copy, the
#                                                  limit for any signer that fsyncs its output)
#   codeseal sign --key file:KEY --cert CHAIN FILE -o OUT
#   osslsigncode sign -certs CHAIN -key KEY -h sha256 -in FILE -out OUT2
#   codeseal verify OUT
#   osslsigncode verify -CAfile root.pem -in OUT2
# and, for the batch row (per key in BATCH_KEYS, all outputs in new directories on the
# same file system as the inputs, removed and synced before each timed run):
#   codeseal sign --key file:KEY --cert CHAIN --out-dir OUT IN/     (one process, 2 workers per CPU,
#                                                  each output fsynced, directory syncs grouped)
#   for f in IN/*.exe; do osslsigncode sign ... -in $f -out OUT2/...; done; sync -f OUT2
#                                                 (one process per file; osslsigncode does
#                                                  not fsync, so one sync of the file system
#                                                  at the end makes its outputs durable too)
# then every codeseal output is verified by osslsigncode, and one more untimed codeseal run
# with CODESEAL_TIMINGS=1 prints the per-file cost of each phase;
# then the ratios (codeseal sign / dd conv=fsync, codeseal verify / openssl dgst, codeseal /
# osslsigncode per verb), codeseal's peak RSS per size, and its peak RSS at the smallest vs
# the largest size (streaming: it must not grow with the file).
#
# Conditions, the same for every tool:
#   - every input is in the page cache (it was just generated and read);
#   - both signers and dd write a new file: the previous output is deleted before each
#     timed run, outside the timing (replacing an existing 256 MiB file costs ~50 ms on
#     ext4, to free its blocks, and would be charged to whoever overwrites), and the file
#     system is synced (`sync -f`) so that no run pays for the previous one's write-back;
#   - codeseal makes its output durable (fsync before the rename), as dd conv=fsync does;
#     osslsigncode does not fsync, so its output may still be in the page cache only when
#     it exits;
#   - verify times are taken with the file in the page cache (both outputs are read once
#     before), so they measure the verifiers, not the disk.
#   - the commands take turns within each of the RUNS rounds, so that a burst of load
#     from elsewhere hits them alike.
# The machine may be shared (other builds, a niced fuzzer): compare ratios taken in the same
# run, and look at the load averages printed at the start and the end.
#
# How the big PE files are made (GEN):
#   section  a real PE32+ with one big initialized section: a small C program whose
#            `.bigdata` section `.incbin`s SIZE MiB of pseudo-random bytes, built with
#            x86_64-w64-mingw32-gcc (about 20 s and 1 GiB of memory for 1 GiB: the
#            assembler copies bytes).
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
SIZES="${SIZES-16 256 1024}"
CAB_SIZES="${CAB_SIZES-16 64}"
MSI_SIZES="${MSI_SIZES-16 64}"
APPX_SIZES="${APPX_SIZES-32}"
RUNS="${RUNS:-5}"
GEN="${GEN:-section}"
DIRECT="${DIRECT:-1}"
BATCH_FILES="${BATCH_FILES-300}"
BATCH_KEYS="${BATCH_KEYS-rsa2048 rsa4096 p256}"
BATCH_RUNS="${BATCH_RUNS:-3}"
BATCH_RUSTCRYPTO="${BATCH_RUSTCRYPTO:-1}"
[[ -z "$BATCH_FILES" ]] && BATCH_FILES=0

die() { echo "compare.sh: $*" >&2; exit 1; }
warn() { echo "WARNING: $*"; }

read -r -a SIZE_LIST <<<"$SIZES"
read -r -a CAB_LIST <<<"$CAB_SIZES"
read -r -a MSI_LIST <<<"$MSI_SIZES"
read -r -a APPX_LIST <<<"$APPX_SIZES"
[[ "$BATCH_FILES" =~ ^[0-9]+$ ]] || die "BATCH_FILES must be a whole number: $BATCH_FILES"
[[ "$BATCH_RUNS" =~ ^[1-9][0-9]*$ ]] || die "BATCH_RUNS must be a positive number: $BATCH_RUNS"
((BATCH_FILES <= 100000)) || die "BATCH_FILES is at most 100000: $BATCH_FILES"
[[ ${#SIZE_LIST[@]} -gt 0 || ${#CAB_LIST[@]} -gt 0 || ${#MSI_LIST[@]} -gt 0 || ${#APPX_LIST[@]} -gt 0 || BATCH_FILES -gt 0 ]] || die "no sizes given"
for s in "${SIZE_LIST[@]}" "${CAB_LIST[@]}" "${MSI_LIST[@]}" "${APPX_LIST[@]}"; do
  [[ "$s" =~ ^[1-9][0-9]*$ ]] || die "size must be a positive whole number of MiB: $s"
  ((s < 2048)) || die "size must be below 2048 MiB (PE certificate tables and cabinets use 32-bit offsets): $s"
done
# The work list: "FORMAT SIZE" pairs.
JOBS=()
for s in "${SIZE_LIST[@]}"; do JOBS+=("pe $s"); done
for s in "${CAB_LIST[@]}"; do JOBS+=("cab $s"); done
for s in "${MSI_LIST[@]}"; do JOBS+=("msi $s"); done
for s in "${APPX_LIST[@]}"; do JOBS+=("appx $s"); done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number: $RUNS"
[[ "$GEN" == section || "$GEN" == overlay ]] || die "GEN must be section or overlay: $GEN"
[[ -n "${EPOCHREALTIME:-}" ]] || die "bash 5 or later is needed (EPOCHREALTIME)"

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
tools=(openssl osslsigncode dd cargo)
[[ "$GEN" == section && ${#SIZE_LIST[@]} -gt 0 ]] && tools+=(x86_64-w64-mingw32-gcc)
[[ ${#CAB_LIST[@]} -gt 0 ]] && tools+=(gcab)
[[ ${#MSI_LIST[@]} -gt 0 ]] && tools+=(wixl)
((BATCH_FILES > 0)) && tools+=(xxd)
[[ ${#APPX_LIST[@]} -gt 0 ]] && tools+=(python3)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run scripts/setup.sh)"
done

if [[ -n "${CODESEAL_BIN:-}" ]]; then
  CODESEAL="$CODESEAL_BIN"
  [[ -x "$CODESEAL" ]] || die "CODESEAL_BIN=$CODESEAL is not an executable"
  echo "== using $CODESEAL (CODESEAL_BIN; no build)"
else
  echo "== building codeseal (release)"
  # --workspace, not -p: the features the workspace build unifies, so the dependencies
  # already built for it are reused.
  (cd "$ROOT" && cargo build --release --quiet --workspace --bin codeseal)
  CODESEAL="${CARGO_TARGET_DIR:-$ROOT/target}/release/codeseal"
  [[ -x "$CODESEAL" ]] || die "$CODESEAL not found after the build"
fi

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
  cat >"$dir/big.c" <<'CSRC'
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
CSRC
  (cd "$dir" && x86_64-w64-mingw32-gcc -Os -s -Wl,--no-insert-timestamp -o big.exe big.c)
  mv "$dir/big.exe" "$out"
  rm -f "$dir/blob.bin"
}

# gen_cab SIZE_MIB OUT: one stored file of pseudo-random bytes (what makes a big cabinet
# big; MSZIP would only add gcab's compression time to the generation).
gen_cab() {
  local mib="$1" out="$2" dir="$WORK/gen"
  mkdir -p "$dir"
  head -c "$((mib << 20))" /dev/urandom >"$dir/payload.bin"
  (cd "$dir" && gcab -c "$out" payload.bin)
  rm -f "$dir/payload.bin"
}

# gen_appx SIZE_MIB OUT: a package whose Publisher is the bench signer's subject, with one
# SIZE_MIB file of pseudo-random bytes (scripts/make-appx.py).
gen_appx() {
  python3 "$ROOT/scripts/make-appx.py" "$2" \
    "CN=codeseal test signer (leaf-rsa2048), O=codeseal test PKI (throwaway)" "$1"
}

# gen_msi SIZE_MIB OUT: an installer with one component holding one file of pseudo-random
# bytes (wixl packs it into the MSI's embedded cabinet).
gen_msi() {
  local mib="$1" out="$2" dir="$WORK/gen"
  mkdir -p "$dir"
  head -c "$((mib << 20))" /dev/urandom >"$dir/payload.bin"
  cat >"$dir/bench.wxs" <<'WXS'
<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="5EA1C0DE-0000-4000-8000-00000000B001" Name="codeseal bench" Language="1033"
           Version="1.0.0" Manufacturer="codeseal bench" UpgradeCode="5EA1C0DE-0000-4000-8000-00000000B002">
    <Package InstallerVersion="200" Compressed="yes"/>
    <Media Id="1" Cabinet="data.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="codeseal-bench">
          <Component Id="Payload" Guid="5EA1C0DE-0000-4000-8000-00000000B003">
            <File Id="payload" Source="payload.bin"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Payload"/></Feature>
  </Product>
</Wix>
WXS
  (cd "$dir" && wixl -o "$out" bench.wxs)
  rm -f "$dir/payload.bin" "$dir/bench.wxs"
}

# free_mib DIR -> free space of DIR's file system in MiB
free_mib() {
  df -Pm "$1" | awk 'NR == 2 { print $4 }'
}

# --- measuring ------------------------------------------------------------------------

declare -A WALL RSS
ROWS=()

# once SIZE LABEL [--rm FILE] [--env VAR=VALUE] CMD...
# (one timed run; keeps the best wall time and the largest peak RSS seen for SIZE|LABEL)
once() {
  local size="$1" label="$2" rmfile="" envset=() t0 t1 e m tf="$WORK/time.txt"
  local key="$size|$label"
  shift 2
  while [[ "$1" == --rm || "$1" == --env ]]; do
    if [[ "$1" == --rm ]]; then
      rmfile="$2"
    else
      envset=("$2")
    fi
    shift 2
  done
  if [[ -n "$rmfile" ]]; then
    rm -f "$rmfile"
    sync -f "$WORK"
  fi
  t0="$EPOCHREALTIME"
  if ! env "${envset[@]}" "$TIME" -f '%M' -o "$tf" "$@" >"$WORK/cmd.out" 2>&1; then
    cat "$WORK/cmd.out" >&2
    die "$label failed at ${size} MiB: $*"
  fi
  t1="$EPOCHREALTIME"
  e="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  m="$(tail -n 1 "$tf")"
  if [[ -z "${WALL[$key]:-}" ]]; then
    ROWS+=("$key")
    WALL["$key"]="$e"
    RSS["$key"]="$m"
  fi
  if awk -v a="$e" -v b="${WALL[$key]}" 'BEGIN { exit !(a < b) }'; then
    WALL["$key"]="$e"
  fi
  ((m > RSS[$key])) && RSS["$key"]="$m"
  return 0
}

# ratio A B -> "A/B" with two decimals
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# --- run ------------------------------------------------------------------------------

echo "== $(nproc) CPUs; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
DONE_SIZES=()
for job in "${JOBS[@]}"; do
  fmt="${job% *}"
  mib="${job#* }"
  ext="exe"
  [[ "$fmt" == cab ]] && ext="cab"
  [[ "$fmt" == msi ]] && ext="msi"
  [[ "$fmt" == appx ]] && ext="msix"
  # The size column and the result keys: "16" for PE files, "cab 16" for cabinets.
  size="$mib"
  [[ "$fmt" == pe ]] || size="$fmt $mib"
  in="$WORK/big-${mib}.${ext}"
  out="$WORK/big-${mib}-codeseal.${ext}"
  out2="$WORK/big-${mib}-osslsigncode.${ext}"

  # Input, two outputs, and (GEN=section) the blob and the linker's output while building.
  [[ "$GEN" == section && "$fmt" == pe ]] && need=$((mib * 5 + 256)) || need=$((mib * 3 + 256))
  have="$(free_mib "$WORK")"
  if ((have < need)); then
    warn "${size} MiB skipped: it needs ~${need} MiB free in $WORK, there are ${have} MiB"
    continue
  fi
  DONE_SIZES+=("$size")

  if [[ "$fmt" == cab ]]; then
    echo "== ${size} MiB: generating (gcab, stored)"
    gen_cab "$mib" "$in"
  elif [[ "$fmt" == msi ]]; then
    echo "== ${size} MiB: generating (wixl)"
    gen_msi "$mib" "$in"
  elif [[ "$fmt" == appx ]]; then
    echo "== ${size} MiB: generating (make-appx.py)"
    gen_appx "$mib" "$in"
  else
    echo "== ${size} MiB: generating ($GEN)"
    gen_pe "$mib" "$in"
  fi
  cat "$in" >/dev/null

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

  echo "== ${size} MiB: timing (best of $RUNS, the commands taking turns)"
  ddout="$WORK/big-${mib}-dd.${ext}"
  sign=("$CODESEAL" sign --key "file:$KEY" --cert "$CHAIN" "$in" -o "$out")
  for ((i = 0; i < RUNS; i++)); do
    once "$size" "openssl dgst" openssl dgst -sha256 "$in"
    once "$size" "dd conv=fsync" --rm "$ddout" dd if="$in" of="$ddout" bs=1M conv=fsync
    once "$size" "codeseal sign" --rm "$out" "${sign[@]}"
    if [[ "$DIRECT" == 1 ]]; then
      once "$size" "codeseal sign direct" --rm "$out" --env CODESEAL_DIRECT_IO=1 "${sign[@]}"
    fi
    once "$size" "osslsigncode sign" --rm "$out2" \
      osslsigncode sign -certs "$CHAIN" -key "$KEY" -h sha256 -in "$in" -out "$out2"
  done
  rm -f "$ddout" "$out"
  "${sign[@]}" >/dev/null
  cat "$out" "$out2" >/dev/null
  for ((i = 0; i < RUNS; i++)); do
    once "$size" "codeseal verify" "$CODESEAL" verify "$out"
    once "$size" "osslsigncode verify" osslsigncode verify -CAfile "$ROOT_CA" -in "$out2"
  done

  rm -f "$in" "$out" "$out2"
done

# --- batch row ------------------------------------------------------------------------

BATCH_DONE=()
declare -A BATCH_BREAKDOWN
if ((BATCH_FILES > 0)); then
  bdir="$WORK/batch"
  mkdir -p "$bdir/in"
  echo "== batch: $BATCH_FILES small PEs ($(stat -c %s "$BASE_PE") bytes each + 4)"
  for ((i = 0; i < BATCH_FILES; i++)); do
    f="$bdir/in/f$(printf '%06d' "$i").exe"
    cp "$BASE_PE" "$f"
    printf '%08x' "$i" | xxd -r -p >>"$f"
  done
  sync -f "$bdir"
  cat "$bdir"/in/*.exe >/dev/null
  cat >"$bdir/ossl-loop.sh" <<'LOOP'
# osslsigncode once per file, then one sync of the output file system.
set -e
chain="$1" key="$2" in="$3" out="$4"
mkdir -p "$out"
for f in "$in"/*.exe; do
  osslsigncode sign -certs "$chain" -key "$key" -h sha256 -in "$f" -out "$out/${f##*/}" >/dev/null
done
sync -f "$out"
LOOP
  for leaf in $BATCH_KEYS; do
    key="$PKI/leaf-$leaf.key"
    chain="$PKI/leaf-$leaf-chain.pem"
    [[ -f "$key" && -f "$chain" ]] || die "BATCH_KEYS: no test leaf $leaf in $PKI"
    row="batch $BATCH_FILES $leaf"
    BATCH_DONE+=("$row")
    echo "== $row: timing (best of $BATCH_RUNS, the commands taking turns)"
    for ((i = 0; i < BATCH_RUNS; i++)); do
      rm -rf "$bdir/cs" "$bdir/ossl"
      sync -f "$bdir"
      once "$row" "codeseal batch" \
        "$CODESEAL" sign --key "file:$key" --cert "$chain" --out-dir "$bdir/cs" "$bdir/in"
      if [[ "$BATCH_RUSTCRYPTO" == 1 ]]; then
        rm -rf "$bdir/cs"
        sync -f "$bdir"
        once "$row" "codeseal batch rustcrypto" --env CODESEAL_CRYPTO_PROVIDER=rustcrypto \
          "$CODESEAL" sign --key "file:$key" --cert "$chain" --out-dir "$bdir/cs" "$bdir/in"
      fi
      rm -rf "$bdir/cs" "$bdir/ossl"
      sync -f "$bdir"
      once "$row" "osslsigncode loop" bash "$bdir/ossl-loop.sh" "$chain" "$key" "$bdir/in" "$bdir/ossl"
    done
    rm -rf "$bdir/cs"
    sync -f "$bdir"
    CODESEAL_TIMINGS=1 "$CODESEAL" sign --key "file:$key" --cert "$chain" --out-dir "$bdir/cs" \
      "$bdir/in" >/dev/null 2>"$bdir/timings.txt"
    BATCH_BREAKDOWN["$row"]="$(cat "$bdir/timings.txt")"
    bad=0
    for f in "$bdir"/cs/*.exe; do
      if ! osslsigncode verify -CAfile "$ROOT_CA" -in "$f" >"$WORK/check.out" 2>&1 ||
        ! grep -q '^Succeeded' "$WORK/check.out"; then
        bad=$((bad + 1))
      fi
    done
    n="$(find "$bdir/cs" -name '*.exe' | wc -l)"
    if ((bad > 0 || n != BATCH_FILES)); then
      warn "$row: osslsigncode rejects $bad of codeseal's $n outputs (of $BATCH_FILES)"
    else
      echo "   osslsigncode verifies all $n of codeseal's outputs"
    fi
    rm -rf "$bdir/cs" "$bdir/ossl"
  done
  rm -rf "$bdir"
fi
[[ ${#DONE_SIZES[@]} -gt 0 || ${#BATCH_DONE[@]} -gt 0 ]] || die "no size could be run"

# --- report ---------------------------------------------------------------------------

echo
echo "codeseal vs peers on generated PE files (GEN=$GEN), cabinets, MSIs and APPX packages (best of $RUNS, $(nproc) CPUs," \
  "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%9s  %-24s %9s %10s %14s\n' "size" "tool verb" "wall s" "MiB/s" "peak RSS KiB"
for row in "${ROWS[@]}"; do
  size="${row%%|*}"
  label="${row#*|}"
  [[ "$size" == batch* ]] && continue
  printf '%5s MiB  %-24s %9s %10s %14s\n' "$size" "$label" "${WALL[$row]}" \
    "$(awk -v s="${size##* }" -v t="${WALL[$row]}" 'BEGIN { if (t + 0 > 0) printf "%.0f", s / t; else printf "n/a" }')" \
    "${RSS[$row]}"
done

if [[ ${#BATCH_DONE[@]} -gt 0 ]]; then
  echo
  printf '%-24s %12s %16s %12s %10s %14s\n' "batch" "codeseal s" "rustcrypto s" "ossl loop s" \
    "files/s" "ossl/codeseal"
  for row in "${BATCH_DONE[@]}"; do
    printf '%-24s %12s %16s %12s %10s %14s\n' "$row" "${WALL[$row|codeseal batch]}" \
      "${WALL[$row|codeseal batch rustcrypto]:-n/a}" "${WALL[$row|osslsigncode loop]}" \
      "$(awk -v n="$BATCH_FILES" -v t="${WALL[$row|codeseal batch]}" 'BEGIN { if (t + 0 > 0) printf "%.0f", n / t; else printf "n/a" }')" \
      "$(ratio "${WALL[$row|osslsigncode loop]}" "${WALL[$row|codeseal batch]}")"
  done
  echo "(codeseal batch: one process, two workers per CPU, aws-lc-rs; rustcrypto: the same with"
  echo " CODESEAL_CRYPTO_PROVIDER=rustcrypto; ossl loop: one osslsigncode per file,"
  echo " then sync -f; ossl/codeseal: how many times faster codeseal is; goal >= 10 with RSA-2048)"
  for row in "${BATCH_DONE[@]}"; do
    echo
    echo "$row, per-file cost by phase (CODESEAL_TIMINGS=1, one untimed run):"
    sed 's/^/    /' <<<"${BATCH_BREAKDOWN[$row]}"
  done
fi
[[ ${#DONE_SIZES[@]} -gt 0 ]] || exit 0

echo
printf '%9s  %10s %12s %10s %12s %14s %16s\n' "size" "sign/dd" "verify/dgst" "sign/dgst" \
  "sign/ossl" "verify/ossl" "sign RSS KiB"
for size in "${DONE_SIZES[@]}"; do
  printf '%5s MiB  %10s %12s %10s %12s %14s %16s\n' "$size" \
    "$(ratio "${WALL[$size|codeseal sign]}" "${WALL[$size|dd conv=fsync]}")" \
    "$(ratio "${WALL[$size|codeseal verify]}" "${WALL[$size|openssl dgst]}")" \
    "$(ratio "${WALL[$size|codeseal sign]}" "${WALL[$size|openssl dgst]}")" \
    "$(ratio "${WALL[$size|codeseal sign]}" "${WALL[$size|osslsigncode sign]}")" \
    "$(ratio "${WALL[$size|codeseal verify]}" "${WALL[$size|osslsigncode verify]}")" \
    "${RSS[$size|codeseal sign]}"
done
echo "(codeseal's time / the other's: dd = dd bs=1M conv=fsync, the durable-copy limit;"
echo " dgst = openssl dgst -sha256; ossl = osslsigncode. Targets: sign/dd <= 1.15,"
echo " verify/dgst <= 1.15, sign/ossl and verify/ossl < 1)"
if [[ "$DIRECT" == 1 ]]; then
  echo
  printf '%9s  %20s %26s\n' "size" "sign direct / dd" "sign direct / sign"
  for size in "${DONE_SIZES[@]}"; do
    printf '%5s MiB  %20s %26s\n' "$size" \
      "$(ratio "${WALL[$size|codeseal sign direct]}" "${WALL[$size|dd conv=fsync]}")" \
      "$(ratio "${WALL[$size|codeseal sign direct]}" "${WALL[$size|codeseal sign]}")"
  done
  echo "(direct: CODESEAL_DIRECT_IO=1, the copy's aligned bulk through an O_DIRECT handle;"
  echo " the default goes through the page cache with early write-back)"
fi

echo
# Constant memory, per format: allow 25% + 2 MiB of noise (allocator, page cache accounting).
for fmt in pe cab msi appx; do
  small="" large=""
  for s in "${DONE_SIZES[@]}"; do
    if [[ "$fmt" == pe ]]; then [[ "$s" =~ ^[0-9]+$ ]] || continue; else [[ "$s" == "$fmt "* ]] || continue; fi
    n="${s##* }"
    [[ -z "$small" || "$n" -lt "${small##* }" ]] && small="$s"
    [[ -z "$large" || "$n" -gt "${large##* }" ]] && large="$s"
  done
  [[ -n "$small" ]] || continue
  for verb in sign verify; do
    rss_small="${RSS[$small|codeseal $verb]}"
    rss_large="${RSS[$large|codeseal $verb]}"
    if ((rss_large <= rss_small + rss_small / 4 + 2048)); then
      verdict="does not grow with file size"
    else
      verdict="GROWS with file size"
    fi
    echo "codeseal $verb peak RSS ($fmt): ${rss_small} KiB at ${small} MiB, ${rss_large} KiB at ${large} MiB: ${verdict}"
  done
done
