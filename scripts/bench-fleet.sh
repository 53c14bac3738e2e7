#!/bin/sh
# P6: the four fleet reports over a synthetic region (300 lycées, 6,000 rooms, ~100,000
# devices). Prints the timings, their ratio to the parsing baseline, and the peak RSS.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench fleet "$@"
