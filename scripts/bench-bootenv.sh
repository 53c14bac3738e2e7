#!/usr/bin/env bash
# Benchmark of the boot environment's build: a cold build (empty output cache; the kernel .deb
# already downloaded, so the mirror is not measured) against a cached rerun of the same inputs,
# in the same run. Prints both times and their ratio.
#   scripts/bench-bootenv.sh [PARC_AGENT_BINARY]   (default: tests/fixtures/stub-agent.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=$(realpath -m "${PARC_CACHE:-.cache}")
AGENT=${1:-tests/fixtures/stub-agent.sh}
# Make sure the kernel package is downloaded once, outside the measure.
PARC_CACHE=$CACHE images/bootenv/build.sh "$AGENT" >/dev/null 2>&1
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bootenv"; ln -s "$CACHE/bootenv/debs" "$TMP/bootenv/debs"
t() { local t0; t0=$(date +%s.%N); PARC_CACHE=$TMP images/bootenv/build.sh "$AGENT" >/dev/null 2>&1; awk "BEGIN{printf \"%.2f\", $(date +%s.%N)-$t0}"; }
cold=$(t); cached=$(t)
echo "bootenv build: cold ${cold} s, cached ${cached} s, cached/cold $(awk "BEGIN{printf \"%.3f\", $cached/$cold}")"
