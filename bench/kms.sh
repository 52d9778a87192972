#!/usr/bin/env bash
# KMS calls per signed file and batch wall time against moto (the project's patched moto).
#
#   bench/kms.sh [N]      N small files (default 100)
#
# Prints, for `codeseal sign` of N files with --jobs 1 and with --jobs 8: the wall time and the
# AWS KMS calls the run made (expected: 1 DescribeKey + 1 GetPublicKey per run, 1 Sign per file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-100}"
VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-kms-bench.XXXXXX")"
cleanup() { bash scripts/moto.sh stop "$WORK/moto" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The KMS round trips dominate here, not our code: the dev build is enough.
cargo build --quiet -p codeseal
BIN="$PWD/target/debug/codeseal"
bash scripts/test-env.sh "$WORK/env" >/dev/null
bash scripts/moto.sh start "$WORK/moto" >/dev/null
# shellcheck disable=SC1091
source "$WORK/moto/moto.env"

"$VENV/bin/python" - <<'PY'
import os, boto3
kms = boto3.client("kms", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
k = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
kms.create_alias(AliasName="alias/codeseal-bench", TargetKeyId=k["KeyId"])
PY
KEY="awskms:///alias/codeseal-bench"
PKI="$WORK/env/pki"
"$BIN" csr --key "$KEY" --subject "CN=codeseal KMS bench" -o "$WORK/req.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$WORK/ext.cnf"
openssl x509 -req -days 7 -sha256 -in "$WORK/req.csr" -CA "$PKI/intermediate.pem" -CAkey "$PKI/intermediate.key" \
  -CAcreateserial -CAserial "$WORK/serial" -extfile "$WORK/ext.cnf" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$PKI/intermediate.pem" >"$WORK/chain.pem"

mkdir -p "$WORK/in"
for i in $(seq 1 "$N"); do cp "$WORK/env/fixtures/pe32.exe" "$WORK/in/f$i.exe"; done

printf '%-10s %8s %8s   %s\n' "jobs" "files" "wall s" "KMS calls"
for jobs in 1 8; do
  rm -rf "$WORK/out"
  start=$(date +%s.%N)
  out=$("$BIN" sign --key "$KEY" --cert "$WORK/chain.pem" --jobs "$jobs" --out-dir "$WORK/out" "$WORK/in")
  end=$(date +%s.%N)
  calls=$(printf '%s\n' "$out" | sed -n 's/^AWS KMS calls: //p')
  summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ signed' || true)
  printf '%-10s %8s %8.2f   %s   (%s)\n' "$jobs" "$N" "$(echo "$end - $start" | bc)" "$calls" "$summary"
done
osslsigncode verify -CAfile "$PKI/root.pem" -in "$WORK/out/f1.exe" | tail -1
