#!/usr/bin/env bash
# Builds osslsigncode 2.14 (Debian's source package, from Debian testing/unstable) into
#
#   ${CODESEAL_OSSLSIGNCODE_NEW_PREFIX:-$HOME/.cache/codeseal/osslsigncode-2.14}/bin/osslsigncode
#
# for the tests that need a newer osslsigncode than Debian 12's backport (2.9): 2.10 added
# JScript (.js) signing. The system osslsigncode is never replaced. scripts/setup.sh calls
# this; the tests find the binary at that path, or at $CODESEAL_OSSLSIGNCODE_NEW.
#
# apt runs with a private state (its own sources.list, lists and cache directories under a
# temporary directory), so the machine's apt configuration is not changed; the source
# package is checked by apt against Debian's signed Sources index. Build dependencies
# (cmake, libssl-dev, libcurl4-openssl-dev, zlib1g-dev, dpkg-dev) come from the machine's
# own apt sources (scripts/setup.sh installs them).
#
# Idempotent: does nothing when the binary exists and reports version 2.14. Every network
# and build step is bounded with `timeout`.
set -euo pipefail

VERSION=2.14
PREFIX="${CODESEAL_OSSLSIGNCODE_NEW_PREFIX:-$HOME/.cache/codeseal/osslsigncode-$VERSION}"
BIN="$PREFIX/bin/osslsigncode"
log() { printf 'osslsigncode-%s: %s\n' "$VERSION" "$*" >&2; }

have() {
  [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | head -n1 | grep -q "^osslsigncode $VERSION[, ]"
}

if have; then
  log "present ($BIN)"
  exit 0
fi

for c in apt-get dpkg-source cmake cc make timeout; do
  command -v "$c" >/dev/null 2>&1 || { log "missing $c (scripts/setup.sh installs it)"; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/codeseal-osslsigncode.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"  # apt downloads as _apt
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
# testing first, unstable as well: whichever still carries 2.14.
cat >"$work/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian testing main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian unstable main
EOF
APT_PRIVATE=(
  -o "Acquire::Retries=3"
  -o "Dir::Etc::sourcelist=$work/sources.list"
  -o "Dir::Etc::sourceparts=$work/none"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
)

log "fetching Debian's source index (private apt state in $work)"
timeout 600 apt-get -q "${APT_PRIVATE[@]}" update >&2

# The Debian revision of 2.14 that the index carries (2.14-1, 2.14-2, ...).
deb_version="$(timeout 120 apt-cache "${APT_PRIVATE[@]}" showsrc osslsigncode 2>/dev/null |
  sed -n "s/^Version: \(${VERSION//./\\.}-[0-9][0-9.]*\)$/\1/p" | sort -V | tail -n1)"
if [[ -z "$deb_version" ]]; then
  log "Debian testing/unstable no longer carries osslsigncode $VERSION (they have:" \
    "$(timeout 120 apt-cache "${APT_PRIVATE[@]}" showsrc osslsigncode 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' '))"
  exit 1
fi

log "apt-get source osslsigncode=$deb_version"
(cd "$work/src" && timeout 600 apt-get -q "${APT_PRIVATE[@]}" source "osslsigncode=$deb_version" >&2)
srcdir="$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name "osslsigncode-$VERSION*" | head -n1)"
[[ -n "$srcdir" && -f "$srcdir/CMakeLists.txt" ]] || { log "no unpacked source in $work/src"; exit 1; }

log "building into $PREFIX"
timeout 900 cmake -S "$srcdir" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" >"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log" >&2; exit 1; }
timeout 1800 cmake --build "$work/build" -j "${CODESEAL_BUILD_JOBS:-2}" >"$work/build.log" 2>&1 ||
  { tail -n 50 "$work/build.log" >&2; exit 1; }
# Install only the binary (no bash completion or man pages outside the prefix).
mkdir -p "$PREFIX/bin"
install -m 0755 "$work/build/osslsigncode" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
have || { log "built, but $BIN does not report version $VERSION"; exit 1; }
log "ok ($("$BIN" --version | head -n1))"
