#!/usr/bin/env bash
# The README's first command (as root): sets up what parc needs on a fresh machine, then
# rebuilds a whole room in the lab — a master VM and three workstation VMs (QEMU), parc's own
# PXE endpoint, a real Samba AD domain — through the eight steps of `parc master`, with the
# teachers' sign-off recorded by `parc signoff` when the procedure asks for it; then damages
# one workstation's disk and brings it back with `parc reimage`.
#
#   scripts/demo.sh            env: PARC_CACHE (default <repo>/.cache), DEMO_KEEP=1 keeps the
#                              lab up at the end (lab/down.sh with the same env tears it down)
#
# It also runs the quick tour of the example lycée first (validation, the list the teachers
# sign, the rotation report).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, QEMU taps, mounts)" >&2; exit 2; }
T0=$(date +%s)
step() { echo; echo "==> $*"; }
elapsed() { echo "$(( $(date +%s) - T0 )) s"; }

export PARC_CACHE=${PARC_CACHE:-$REPO/.cache}
mkdir -p "$PARC_CACHE"
DEMO=$PARC_CACHE/demo
# The lab is a lycée: its own DHCP server (10.77.0.254) hands out addresses, parc answers
# PXE beside it (proxyDHCP, site.toml).
export PARC_LAB_PREFIX=parcdemo PARC_LAB_DIR=$DEMO/lab PARC_LAB_HOSTS=

step "packages (apt-get, only what is missing)"

scripts/pxe-deps.sh

step "building parc and parc-agent (release)"
cargo build --release --bins
PARC=$REPO/target/release/parc

ws=recipes/lycee-mistral
step "parc check $ws (expected: 1 error and 6 warnings, see $ws/README.md)"
status=0
"$PARC" check "$ws" || status=$?
[ "$status" -eq 1 ] || { echo "demo: unexpected exit status $status from parc check (expected 1)" >&2; exit 1; }
step "parc report rotation (what to move where, what to buy)"
"$PARC" report rotation --format md --today 2026-11-22 -w "$ws" | head -n 20

step "the lab: isolated network, Samba AD domain controller (lab/up.sh)"
lab/down.sh >/dev/null 2>&1 || true
rm -rf "$DEMO"
lab/up.sh
trap '[ "${DEMO_KEEP:-0}" = 1 ] || lab/down.sh' EXIT

step "boot environment and the base OS image"
BOOTENV=$(images/bootenv/build.sh "$REPO/target/release/parc-agent" | tail -n1)
W=$DEMO/ws
cp -r lab/workspace "$W"
PARC_BIN=$PARC images/base/build.sh --bootenv "$BOOTENV" "$W" >/dev/null
"$PARC" secret set domain-join -w "$W" < "$DEMO/lab/secrets/admin-password"
# The technician exports the DC's CA certificate once (site.toml: ca_file).
cp "$DEMO/lab/dc/private/tls/ca.pem" "$W/dc-ca.pem"
export PARC_WORKSPACE=$W PARC_LAB=$DEMO/lab PARC_BOOTENV=$BOOTENV

step "parc doctor labo: the lab's network as a lycée's (its DHCP, its DC over LDAPS and Kerberos)"
"$PARC" doctor labo

step "parc check (the list is not signed yet: expected 1 error)"
"$PARC" check "$W" || true

step "parc master labo: collect, format the master, install, technical tests ($(elapsed))"
status=0
"$PARC" master labo || status=$?
# The procedure stops before capture: the teachers have not signed the list yet.
[ "$status" -eq 2 ] || { echo "demo: expected parc master to stop at the sign-off (exit 2), got $status" >&2; exit 1; }

step "the teachers check the master and sign the list ($(elapsed))"
"$PARC" software labo
"$PARC" signoff labo --teacher "Mme Claire Martin" --discipline "Mathématiques"

step "parc master labo: capture, deploy, join, verify ($(elapsed))"
"$PARC" master labo

step "parc status labo"
"$PARC" status labo

step "a workstation breaks: labo-pc03's disk is damaged ($(elapsed))"
VMS=$DEMO/lab/vms
kill "$(cat "$VMS/labo-pc03.pid")" 2>/dev/null || true
sleep 1
dd if=/dev/zero of="$VMS/labo-pc03.img" bs=1M count=40 conv=notrunc status=none
echo "labo-pc03: partition table, boot code and the start of its root filesystem zeroed"

step "parc reimage labo-pc03 ($(elapsed))"
"$PARC" reimage labo-pc03

step "the verify report"
"$PARC" status labo
report=$(ls -1 "$W"/reports/verification-labo-*.json | sort | tail -n1)
echo "verify report (French, for the head of the lycée): ${report%.json}.html"
grep -E '^ *"(host|status)"' "$report" | paste - - | sed -E 's/[[:space:]]*"host": "([^"]*)",[[:space:]]*"status": "([^"]*)",?/  \1\t\2/'
echo
echo "the same in the web console: $PARC console -w $W   (then http://127.0.0.1:8080/)"
echo
echo "demo: done in $(elapsed)"
