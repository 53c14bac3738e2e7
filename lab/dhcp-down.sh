#!/usr/bin/env bash
# Stops a DHCP server of lab/dhcp-up.sh and removes its namespace and folder (the bridge port
# goes with the namespace). Succeeds when it is not running.
#   lab/dhcp-down.sh NAME      (root)
source "$(dirname "$0")/lib.sh"
[ $# = 1 ] || { echo "usage: $0 NAME" >&2; exit 2; }
[[ $1 =~ ^[a-z0-9-]+$ ]] || { echo "error: NAME must be [a-z0-9-]+: $1" >&2; exit 2; }
ns=$(host_ns "$1")
set +e
if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
  for round in 1 2 3 4 5 6; do
    pids=$(ip netns pids "$ns")
    [ -z "$pids" ] && break
    sig=TERM; [ $round -gt 3 ] && sig=KILL
    kill -s $sig $pids 2>/dev/null
    sleep 0.2
  done
  ip netns del "$ns"
fi
rm -rf "$LAB_DIR/dhcp-$1"
say "DHCP server $1 stopped"
