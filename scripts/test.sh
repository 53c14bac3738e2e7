#!/usr/bin/env bash
# The README's second command: the whole test suite, from a fresh machine.
# Installs what the tests need (nothing outside the Rust toolchain yet), then runs every test
# target: unit tests, the broken-workspace corpus, the CLI tests and the parser property tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/pxe-deps.sh
cargo test --workspace --all-features --no-fail-fast
