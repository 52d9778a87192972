#!/usr/bin/env bash
# Prove the local test TSA (scripts/tsa-server.py) is right, independently of
# codeseal's Rust code: osslsigncode signs pe64.exe with time stamps from it
# (RFC 3161 via -ts, legacy Authenticode via -t), and osslsigncode + signify must
# accept them with tsa-root.pem trusted (and reject them without it). Fault
# routes must make osslsigncode's signing fail (/fail500 /garbage /reject) or
# produce the intended defect (checked with `openssl ts -verify`).
#
#   usage: scripts/selfcheck-tsa.sh     (KEEP=1 keeps the temp dir and logs)
#
# Needs scripts/setup.sh to have run (uses ${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}).
# Exits non-zero on any mismatch. Last line: "selfcheck-tsa: N passed, M failed".
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
PY="$VENV/bin/python"

for c in osslsigncode openssl timeout; do
  command -v "$c" >/dev/null 2>&1 || { echo "selfcheck-tsa: $c missing; run scripts/setup.sh" >&2; exit 1; }
done
[[ -x "$PY" ]] || { echo "selfcheck-tsa: $PY missing; run scripts/setup.sh" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-selfcheck-tsa.XXXXXX")"
cleanup() {
  bash "$SCRIPTS/tsa.sh" stop "$TMP/tsa" || true
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "selfcheck-tsa: kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

bash "$SCRIPTS/test-env.sh" "$TMP/env" >/dev/null
FIX="$TMP/env/fixtures"
PKI="$TMP/env/pki"
OUT="$TMP/out"
mkdir -p "$OUT"

URL="$(TSA_SLOW_SECONDS=30 bash "$SCRIPTS/tsa.sh" start "$TMP/tsa" "$PKI")"
echo "selfcheck-tsa: TSA at $URL (log: $TMP/tsa/tsa.log)"
# shellcheck disable=SC1091
source "$TMP/tsa/tsa.env"
[[ "$CODESEAL_TSA_URL" == "$URL" ]] || { echo "selfcheck-tsa: tsa.env disagrees with start output" >&2; exit 1; }

passed=0
failed=0
FAILURES=()
record() { # record LABEL EXPECT GOT
  if [[ "$2" == "$3" ]]; then
    passed=$((passed + 1))
    printf '  ok    %-58s %s\n' "$1" "$3"
  else
    failed=$((failed + 1))
    FAILURES+=("$1: expected $2, got $3")
    printf '  FAIL  %-58s expected %s, got %s\n' "$1" "$2" "$3"
  fi
}
info() { printf '  info  %-58s %s\n' "$1" "$2"; }

ossl_sign() { # ossl_sign ID LEAF TSOPT URL -> ok|fail   (TSOPT: -ts or -t)
  local out="$OUT/$1.exe"
  rm -f "$out"
  if timeout 60 osslsigncode sign -certs "$PKI/$2-chain.pem" -key "$PKI/$2.key" -h sha256 \
       "$3" "$4" -in "$FIX/pe64.exe" -out "$out" >"$OUT/$1.sign.log" 2>&1 && [[ -s "$out" ]]; then
    echo ok
  else
    echo fail
  fi
}

# ossl_verify ID TSA_CAFILE -> "EXIT/ts=ok|failed|none/succeeded|failed"
ossl_verify() {
  local log rc=0 ts=none res=failed
  log="$OUT/$1.verify-$(basename "$2" .pem).log"
  timeout 60 osslsigncode verify -CAfile "$PKI/root.pem" -TSA-CAfile "$2" -in "$OUT/$1.exe" >"$log" 2>&1 || rc=$?
  if grep -q '^Timestamp Server Signature verification: ok' "$log"; then ts=ok
  elif grep -q '^Timestamp Server Signature verification: failed' "$log"; then ts=failed; fi
  grep -qx 'Succeeded' "$log" && res=succeeded
  echo "rc$rc/ts=$ts/$res"
}

signify() { # signify ID TRUST... -> ok|fail|error(rc=N)
  local id="$1" rc=0 log="$OUT/$1.signify-$#.log"
  shift
  local args=()
  for t in "$@"; do args+=(--trust "$t"); done
  "$PY" "$SCRIPTS/signify-verify.py" "$OUT/$id.exe" "${args[@]}" >"$log" 2>&1 || rc=$?
  case "$rc" in
    0) grep -qx 'signify: OK' "$log" && echo ok || echo "error(no OK line)" ;;
    1) echo fail ;;
    *) echo "error(rc=$rc)" ;;
  esac
}

# Which time-stamp attribute is in the signature: rfc3161 | legacy | none
ts_kind() {
  local sig="$OUT/$1.sig.der"
  rm -f "$sig"
  osslsigncode extract-signature -in "$OUT/$1.exe" -out "$sig" >/dev/null 2>&1 || { echo none; return; }
  local parsed
  parsed="$(openssl asn1parse -inform DER -in "$sig" 2>/dev/null || true)"
  if grep -q ':1.3.6.1.4.1.311.3.3.1$' <<<"$parsed"; then echo rfc3161
  elif grep -q ':countersignature$' <<<"$parsed"; then echo legacy
  else echo none; fi
}

# post PATH CONTENT_TYPE INFILE OUTFILE TIMEOUT -> HTTP status | timeout | error
post() {
  "$PY" - "$URL$1" "$2" "$3" "$4" "$5" <<'EOF'
import socket, sys, urllib.error, urllib.request
url, ctype, infile, outfile, timeout = sys.argv[1:6]
data = open(infile, "rb").read()
req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype})
try:
    with urllib.request.urlopen(req, timeout=float(timeout)) as r:
        body, code = r.read(), r.status
except urllib.error.HTTPError as e:
    body, code = e.read(), e.code
except (socket.timeout, TimeoutError):
    print("timeout"); sys.exit(0)
except urllib.error.URLError as e:
    print("timeout" if isinstance(e.reason, (socket.timeout, TimeoutError)) else "error"); sys.exit(0)
open(outfile, "wb").write(body)
print(code)
EOF
}

# ts_verify RESPONSE QUERY -> ok | fail:<first openssl reason>
ts_verify() {
  local log="$1.tsverify.log"
  if openssl ts -verify -in "$1" -queryfile "$2" -CAfile "$PKI/tsa-root.pem" >"$log" 2>&1; then
    echo ok
  else
    local why
    why="$(grep -oE 'Verify error:[a-z ]+|nonce mismatch|message imprint mismatch|[a-z ]+certificate purpose' "$log" | head -n 1)"
    echo "fail:${why:-unknown}"
  fi
}

echo "== server basics"
GET_HEALTH="$("$PY" -c 'import sys,urllib.request; r=urllib.request.urlopen(sys.argv[1]+"/health",timeout=5); print(r.status, r.read().decode().strip())' "$URL")"
record "GET /health" "200 ok" "$GET_HEALTH"
URL2="$(bash "$SCRIPTS/tsa.sh" start "$TMP/tsa" "$PKI")"
record "tsa.sh start is idempotent (same URL)" "$URL" "$URL2"

openssl ts -query -data "$FIX/pe64.exe" -sha256 -cert -out "$OUT/q.tsq" 2>/dev/null
record "POST /rfc3161 (openssl ts -query)" 200 "$(post /rfc3161 application/timestamp-query "$OUT/q.tsq" "$OUT/rfc3161.tsr" 10)"
record "  openssl ts -verify" ok "$(ts_verify "$OUT/rfc3161.tsr" "$OUT/q.tsq")"
head -c 70000 /dev/zero >"$OUT/big.bin"
record "POST 70000-byte body -> 413" 413 "$(post /rfc3161 application/timestamp-query "$OUT/big.bin" "$OUT/big.out" 10)"
record "POST unknown route -> 404" 404 "$(post /nope application/timestamp-query "$OUT/q.tsq" "$OUT/nope.out" 10)"
printf 'not a time-stamp request' >"$OUT/junk.bin"
record "POST /legacy with junk -> 400" 400 "$(post /legacy application/octet-stream "$OUT/junk.bin" "$OUT/junk.out" 10)"

echo "== good time stamps (osslsigncode sign, osslsigncode verify, signify)"
for spec in rfc3161:-ts:rfc3161 legacy:-t:legacy both:-ts:rfc3161 both:-t:legacy; do
  IFS=: read -r route opt kind <<<"$spec"
  id="good-$route$opt"
  s="$(ossl_sign "$id" leaf-rsa2048 "$opt" "$URL/$route")"
  record "sign $opt /$route" ok "$s"
  [[ "$s" == ok ]] || { tail -n 5 "$OUT/$id.sign.log" | sed 's/^/        /'; continue; }
  record "  time-stamp attribute kind" "$kind" "$(ts_kind "$id")"
  record "  osslsigncode verify (tsa-root trusted)" "rc0/ts=ok/succeeded" "$(ossl_verify "$id" "$PKI/tsa-root.pem")"
  record "  signify (root + tsa-root trusted)" ok "$(signify "$id" "$PKI/root.pem" "$PKI/tsa-root.pem")"
  # Negative controls: the time-stamp chain must actually be checked.
  record "  osslsigncode verify (TSA root NOT trusted)" "rc0/ts=failed/succeeded" "$(ossl_verify "$id" "$PKI/other-root.pem")"
  record "  signify (root only; TSA root NOT trusted)" fail "$(signify "$id" "$PKI/root.pem")"
done

echo "== fault routes that must make signing fail"
for route in fail500 garbage reject; do
  for opt in -ts -t; do
    record "sign $opt /$route" fail "$(ossl_sign "fault-$route$opt" leaf-rsa2048 "$opt" "$URL/$route")"
  done
done
record "POST /fail500 status" 500 "$(post /fail500 application/timestamp-query "$OUT/q.tsq" "$OUT/fail500.out" 10)"
record "POST /reject status" 200 "$(post /reject application/timestamp-query "$OUT/q.tsq" "$OUT/reject.tsr" 10)"
record "  /reject PKIStatus" "Rejected." \
  "$(openssl ts -reply -in "$OUT/reject.tsr" -text 2>/dev/null | sed -n 's/^Status: //p')"

echo "== fault routes that produce a defective token"
for route in wrongnonce wrongimprint noncritical; do
  case "$route" in
    wrongnonce) want="fail:nonce mismatch" ;;
    wrongimprint) want="fail:message imprint mismatch" ;;
    noncritical) want="fail:Verify error:unsuitable certificate purpose" ;;
  esac
  record "POST /$route status" 200 "$(post "/$route" application/timestamp-query "$OUT/q.tsq" "$OUT/$route.tsr" 10)"
  record "  openssl ts -verify" "$want" "$(ts_verify "$OUT/$route.tsr" "$OUT/q.tsq")"
  id="defect-$route"
  s="$(ossl_sign "$id" leaf-rsa2048 -ts "$URL/$route")"
  record "  osslsigncode sign -ts /$route (accepts: no checks at sign time)" ok "$s"
  [[ "$s" == ok ]] || continue
  info "  osslsigncode verify" "$(ossl_verify "$id" "$PKI/tsa-root.pem")"
  info "  signify" "$(signify "$id" "$PKI/root.pem" "$PKI/tsa-root.pem")"
done
# A token whose imprint doesn't cover the signature must be refused by signify.
record "  signify rejects the /wrongimprint time stamp" fail "$(signify defect-wrongimprint "$PKI/root.pem" "$PKI/tsa-root.pem")"

echo "== /flaky, /slow"
record "POST /flaky/selfcheck #1 -> 503" 503 "$(post /flaky/selfcheck application/timestamp-query "$OUT/q.tsq" "$OUT/flaky1.out" 10)"
record "POST /flaky/selfcheck #2 -> 200" 200 "$(post /flaky/selfcheck application/timestamp-query "$OUT/q.tsq" "$OUT/flaky2.tsr" 10)"
record "  openssl ts -verify" ok "$(ts_verify "$OUT/flaky2.tsr" "$OUT/q.tsq")"
record "POST /flaky/selfcheck #3 -> 503" 503 "$(post /flaky/selfcheck application/timestamp-query "$OUT/q.tsq" "$OUT/flaky3.out" 10)"
record "POST /slow with a 2 s client timeout" timeout "$(post /slow application/timestamp-query "$OUT/q.tsq" "$OUT/slow.out" 2)"

echo "== expired leaf (current time stamp cannot rescue it)"
s="$(ossl_sign expired-ts leaf-expired -ts "$URL/rfc3161")"
record "sign leaf-expired -ts /rfc3161" ok "$s"
if [[ "$s" == ok ]]; then
  record "  osslsigncode verify" "rc1/ts=ok/failed" "$(ossl_verify expired-ts "$PKI/tsa-root.pem")"
  record "  signify" fail "$(signify expired-ts "$PKI/root.pem" "$PKI/tsa-root.pem")"
fi

echo "== stop"
bash "$SCRIPTS/tsa.sh" stop "$TMP/tsa"
if [[ -f "$TMP/tsa/tsa.pid" ]]; then got=present; else got=gone; fi
record "tsa.sh stop removes tsa.pid" gone "$got"
if "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1]+"/health",timeout=2)' "$URL" 2>/dev/null; then
  got=up
else
  got=down
fi
record "server is down after stop" down "$got"

echo "selfcheck-tsa: $passed passed, $failed failed"
if [[ $failed -ne 0 ]]; then
  printf '  MISMATCH %s\n' "${FAILURES[@]}" >&2
  [[ "${KEEP:-0}" == 1 ]] || echo "  (rerun with KEEP=1 to keep logs)" >&2
  exit 1
fi
