#!/usr/bin/env bash
# The README's first command: sets up what parc needs on a fresh machine and runs the main job
# on the example lycée. Today: validation of the whole workspace, the list the teachers sign,
# the lab room's plan and the rotation report; next, rebuilding the lab room end to end.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building parc"
cargo build --release --bins

ws=recipes/lycee-mistral
echo "==> parc check $ws"
echo "    (expected: 1 error — room c112 no longer fits its CAD software — and 5 warnings;"
echo "     see $ws/README.md)"
status=0
./target/release/parc check "$ws" || status=$?
if [ "$status" -ne 1 ]; then
  echo "demo: unexpected exit status $status from parc check (expected 1)" >&2
  exit 1
fi

echo
echo "==> parc software labo (the list the teachers signed)"
./target/release/parc software labo -w "$ws"

echo
echo "==> parc master labo --dry-run (the eight steps planned for the lab room)"
./target/release/parc master labo --dry-run -w "$ws"

echo
echo "==> parc report rotation (what to move where, what to buy)"
./target/release/parc report rotation --format md --today 2026-11-22 -w "$ws"
echo "demo: done"
