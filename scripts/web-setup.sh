#!/usr/bin/env bash
# What the web page test (service/tests/web_page.rs) needs: Chromium, Node >= 20 and the
# pinned playwright-core of service/tests/web (package-lock.json).
#
#   - Chromium at ${CHROMIUM:-/usr/bin/chromium}: apt-get install chromium, only when it is
#     missing and we are root (or have passwordless sudo)
#   - node >= 20 and npm: must be there (Debian 12's own nodejs is 18, too old)
#   - service/tests/web/node_modules: npm ci, with the npm cache at
#     ${CODESEAL_NPM_CACHE:-$HOME/.cache/codeseal/npm}, only when missing or not the pinned version
#
# Idempotent and fast when everything is present. Non-interactive. Prints one "ok:"/"FAIL:"
# line per check and exits 1 if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/service/tests/web"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
NPM_CACHE="${CODESEAL_NPM_CACHE:-$HOME/.cache/codeseal/npm}"
MIN_NODE=20

log() { printf 'web-setup: %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    SUDO=(none)
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- Chromium ----------------------------------------------------------------

if [[ ! -x "$CHROMIUM" ]]; then
  if [[ "${SUDO[*]}" == none ]]; then
    log "$CHROMIUM is missing and we are not root: install Debian's chromium package"
  else
    log "installing chromium"
    "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update
    "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" chromium
  fi
fi

# --- Node ----------------------------------------------------------------------

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_ok() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [[ $(node_major) -ge $MIN_NODE ]]; }

# --- node_modules ------------------------------------------------------------------

pinned() { sed -n 's/^ *"playwright-core": *"\([^"]*\)".*/\1/p' "$WEB/package.json" | head -n1; }
installed() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$WEB/node_modules/playwright-core/package.json" 2>/dev/null | head -n1; }
modules_ok() { [[ -n "$(pinned)" && "$(installed)" == "$(pinned)" ]]; }

if node_ok && ! modules_ok; then
  log "npm ci in $WEB (cache $NPM_CACHE)"
  mkdir -p "$NPM_CACHE"
  npm ci --prefix "$WEB" --cache "$NPM_CACHE" --no-audit --no-fund --loglevel=error >&2
fi

# --- checks ------------------------------------------------------------------------

fail=0
check() { # check DESCRIPTION CMD...
  local desc="$1"; shift
  if "$@" >/dev/null 2>&1; then
    printf 'ok:   %s\n' "$desc"
  else
    printf 'FAIL: %s\n' "$desc"
    fail=1
  fi
}

check "chromium present ($CHROMIUM)" test -x "$CHROMIUM"
check "node >= $MIN_NODE and npm present (node $(node --version 2>/dev/null || echo none))" node_ok
check "playwright-core $(pinned) installed in service/tests/web" modules_ok

if [[ $fail -ne 0 ]]; then
  log "some checks failed"
  exit 1
fi
