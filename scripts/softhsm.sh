#!/usr/bin/env bash
# A throwaway SoftHSM2 token with codeseal's test keys (stand-in for AWS CloudHSM).
#
#   usage: scripts/softhsm.sh init DIR
#
# Creates, in DIR:
#   softhsm2.conf   SoftHSM2 configuration; its token directory is DIR/tokens
#   tokens/         the token store
#   pin             the user PIN (mode 0600, no trailing newline)
#   env             `export SOFTHSM2_CONF=...` and `export CODESEAL_PKCS11_MODULE=...`
#   ready           written last; holds the hash of this script
#
# The token is labelled `codeseal-test` (SO PIN 12345678, user PIN 1234) and holds four
# key pairs generated on the token with pkcs11-tool:
#   rsa2048 (id 01), rsa4096 (id 02), p256 (id 03), p384 (id 04)
#
# Idempotent: does nothing when DIR/ready matches this script and the token is there.
# Safe to call concurrently (flock). Non-interactive; every tool call is time-bounded.
# The PINs are fixed test values: softhsm2-util takes them on argv, pkcs11-tool reads the
# user PIN from the environment (`--pin env:VAR`). Never reuse this for a real token.
#
# Environment: SOFTHSM2_MODULE overrides the module path (default: the Debian location).
set -euo pipefail

TOKEN_LABEL="codeseal-test"
SO_PIN="12345678"
USER_PIN="1234"
# label id key-type
KEYS=(
  "rsa2048 01 rsa:2048"
  "rsa4096 02 rsa:4096"
  "p256 03 EC:prime256v1"
  "p384 04 EC:secp384r1"
)
TOOL_TIMEOUT=180

log() { printf 'softhsm: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 init DIR" >&2
  exit 2
}

find_module() {
  local m
  for m in "${SOFTHSM2_MODULE:-}" /usr/lib/softhsm/libsofthsm2.so \
           /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/local/lib/softhsm/libsofthsm2.so /usr/lib64/softhsm/libsofthsm2.so; do
    if [[ -n "$m" && -f "$m" ]]; then
      printf '%s\n' "$m"
      return 0
    fi
  done
  return 1
}

require_tools() {
  local c
  for c in softhsm2-util pkcs11-tool flock timeout sha256sum; do
    command -v "$c" >/dev/null 2>&1 ||
      die "$c not found: run scripts/setup.sh (installs softhsm2 and opensc)"
  done
  MODULE="$(find_module)" ||
    die "libsofthsm2.so not found: run scripts/setup.sh (installs softhsm2) or set SOFTHSM2_MODULE"
}

script_hash() { sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1; }

# Whether DIR holds a complete token made by this version of the script.
complete() {
  [[ -f "$DIR/ready" && -f "$DIR/softhsm2.conf" && -s "$DIR/pin" && -f "$DIR/env" ]] || return 1
  [[ "$(cat "$DIR/ready")" == "$(script_hash)" ]] || return 1
  token_visible
}

# Whether the token shows up in DIR's SoftHSM2 configuration.
token_visible() {
  local slots
  slots="$(SOFTHSM2_CONF="$DIR/softhsm2.conf" timeout "$TOOL_TIMEOUT" softhsm2-util --show-slots 2>/dev/null)" ||
    return 1
  grep -Eq "Label:[[:space:]]+${TOKEN_LABEL}[[:space:]]*$" <<<"$slots"
}

init() {
  DIR="$1"
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  require_tools

  exec 9>"$DIR/.lock"
  flock -w 600 9 || die "timed out waiting for the lock on $DIR/.lock"

  if complete; then
    log "up to date ($DIR)"
    return 0
  fi

  log "creating token $TOKEN_LABEL in $DIR"
  rm -f "$DIR/ready"
  rm -rf "$DIR/tokens"
  mkdir -p "$DIR/tokens"
  chmod 700 "$DIR/tokens"
  cat >"$DIR/softhsm2.conf" <<EOF
# Written by scripts/softhsm.sh
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
  export SOFTHSM2_CONF="$DIR/softhsm2.conf"

  (umask 077 && printf '%s' "$USER_PIN" >"$DIR/pin")
  chmod 600 "$DIR/pin"

  timeout "$TOOL_TIMEOUT" softhsm2-util --init-token --free --label "$TOKEN_LABEL" \
    --so-pin "$SO_PIN" --pin "$USER_PIN" </dev/null >/dev/null ||
    die "softhsm2-util --init-token failed"

  export CODESEAL_SOFTHSM_PIN="$USER_PIN"
  local spec label id type
  for spec in "${KEYS[@]}"; do
    read -r label id type <<<"$spec"
    log "generating $type key pair $label (id $id)"
    timeout "$TOOL_TIMEOUT" pkcs11-tool --module "$MODULE" --token-label "$TOKEN_LABEL" \
      --login --pin env:CODESEAL_SOFTHSM_PIN --keypairgen --key-type "$type" \
      --label "$label" --id "$id" --usage-sign </dev/null >/dev/null ||
      die "pkcs11-tool --keypairgen $label failed"
  done
  unset CODESEAL_SOFTHSM_PIN

  cat >"$DIR/env" <<EOF
export SOFTHSM2_CONF=$DIR/softhsm2.conf
export CODESEAL_PKCS11_MODULE=$MODULE
EOF

  token_visible || die "token $TOKEN_LABEL not visible after creation"
  script_hash >"$DIR/ready"
  log "done ($DIR)"
}

[[ $# -eq 2 && "$1" == "init" && -n "$2" ]] || usage
init "$2"
