#!/usr/bin/env bash
# Prove the external test infrastructure works, independently of codeseal's Rust
# code: every fixture is signed by osslsigncode with every code-signing leaf and
# must verify with osslsigncode and signify against root.pem, and must FAIL with
# both against other-root.pem. A few negative controls (tampered file,
# serverAuth-only leaf, unsigned file) must fail too.
#
#   usage: scripts/selfcheck-infra.sh     (KEEP=1 keeps the temp dir)
#
# Needs scripts/setup.sh to have run (uses ${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}).
# Exits non-zero on any mismatch. Last line: "selfcheck: N passed, N failed".
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
PY="$VENV/bin/python"
LEAVES=(leaf-rsa2048 leaf-rsa4096 leaf-p256)

for c in osslsigncode x86_64-w64-mingw32-gcc i686-w64-mingw32-gcc openssl; do
  command -v "$c" >/dev/null 2>&1 || { echo "selfcheck: $c missing; run scripts/setup.sh" >&2; exit 1; }
done
[[ -x "$PY" ]] || { echo "selfcheck: $PY missing; run scripts/setup.sh" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-selfcheck.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
  echo "selfcheck: keeping $TMP"
else
  trap 'rm -rf "$TMP"' EXIT
fi

bash "$SCRIPTS/test-env.sh" "$TMP/env"
FIX="$TMP/env/fixtures"
PKI="$TMP/env/pki"
OUT="$TMP/signed"
LOGS="$TMP/logs"
mkdir -p "$OUT" "$LOGS"

passed=0
failed=0
FAILURES=()

# Each check: expect "ok" or "fail"; records pass/fail of the expectation.
record() { # record LABEL EXPECT GOT
  if [[ "$2" == "$3" ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    FAILURES+=("$1: expected $2, got $3")
  fi
}

ossl_sign() { # ossl_sign IN OUT LEAF LOG -> ok|fail
  rm -f "$2"   # osslsigncode refuses to overwrite -out
  if osslsigncode sign -certs "$PKI/$3-chain.pem" -key "$PKI/$3.key" -h sha256 \
       -in "$1" -out "$2" >"$4" 2>&1 && [[ -s "$2" ]]; then
    echo ok
  else
    echo fail
  fi
}

ossl_verify() { # ossl_verify FILE ROOT LOG -> ok|fail   (ok = exit 0 AND "Succeeded")
  local rc=0
  osslsigncode verify -CAfile "$2" -in "$1" >"$3" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]] && grep -qx 'Succeeded' "$3"; then
    echo ok
  else
    echo fail
  fi
}

signify_verify() { # signify_verify FILE ROOT LOG -> ok|fail|error
  local rc=0
  "$PY" "$SCRIPTS/signify-verify.py" "$1" --trust "$2" >"$3" 2>&1 || rc=$?
  case "$rc" in
    0) if grep -qx 'signify: OK' "$3"; then echo ok; else echo error; fi ;;
    1) echo fail ;;
    *) echo "error(rc=$rc)" ;;
  esac
}

printf '%-16s %-14s %-6s %-10s %-10s %-10s %-10s\n' \
  fixture leaf sign ossl/root signify/root ossl/other signify/other
while IFS= read -r fx; do
  [[ -n "$fx" ]] || continue
  for leaf in "${LEAVES[@]}"; do
    id="${fx%.*}-${fx##*.}-$leaf"
    signed="$OUT/$id.${fx##*.}"
    s="$(ossl_sign "$FIX/$fx" "$signed" "$leaf" "$LOGS/$id.sign.log")"
    record "$fx/$leaf sign" ok "$s"
    if [[ "$s" != ok ]]; then
      printf '%-16s %-14s %-6s (see %s)\n' "$fx" "$leaf" "$s" "$LOGS/$id.sign.log"
      continue
    fi
    a="$(ossl_verify "$signed" "$PKI/root.pem" "$LOGS/$id.ossl-root.log")"
    b="$(signify_verify "$signed" "$PKI/root.pem" "$LOGS/$id.signify-root.log")"
    c="$(ossl_verify "$signed" "$PKI/other-root.pem" "$LOGS/$id.ossl-other.log")"
    d="$(signify_verify "$signed" "$PKI/other-root.pem" "$LOGS/$id.signify-other.log")"
    record "$fx/$leaf osslsigncode verify (root)" ok "$a"
    record "$fx/$leaf signify verify (root)" ok "$b"
    record "$fx/$leaf osslsigncode verify (other-root)" fail "$c"
    record "$fx/$leaf signify verify (other-root)" fail "$d"
    printf '%-16s %-14s %-6s %-10s %-10s %-10s %-10s\n' "$fx" "$leaf" "$s" "$a" "$b" "$c" "$d"
  done
done <"$FIX/fixtures.txt"

# --- negative controls (all must fail in both verifiers) ---------------------

echo "negative controls (expected: fail):"
neg() { # neg LABEL FILE
  local a b
  a="$(ossl_verify "$2" "$PKI/root.pem" "$LOGS/neg-$1.ossl.log")"
  b="$(signify_verify "$2" "$PKI/root.pem" "$LOGS/neg-$1.signify.log")"
  record "negative $1 osslsigncode" fail "$a"
  record "negative $1 signify" fail "$b"
  printf '  %-34s ossl=%-5s signify=%s\n' "$1" "$a" "$b"
}

# 1. Unsigned fixture.
neg unsigned-pe64.exe "$FIX/pe64.exe"

# 2. Tampered: flip one byte inside the first section of a good signature's file.
tampered="$OUT/tampered.exe"
cp "$OUT/pe64-exe-leaf-rsa2048.exe" "$tampered"
printf '\xcc' | dd of="$tampered" bs=1 seek=1100 conv=notrunc status=none
neg tampered-pe64.exe "$tampered"

# 3. Leaf with EKU serverAuth only (no codeSigning).
sa="$OUT/serverauth.exe"
record "serverauth sign" ok "$(ossl_sign "$FIX/pe64.exe" "$sa" leaf-serverauth "$LOGS/serverauth.sign.log")"
neg serverauth-leaf "$sa"

echo "selfcheck: $passed passed, $failed failed"
if [[ $failed -ne 0 ]]; then
  printf '  MISMATCH %s\n' "${FAILURES[@]}" >&2
  [[ "${KEEP:-0}" == 1 ]] || echo "  (rerun with KEEP=1 to keep logs)" >&2
  exit 1
fi
