#!/usr/bin/env bash
# The lab network: bridge br0 in its own namespace (no uplink), the server namespace
# (10.77.0.1/24) and one namespace per workstation, each joined to br0 by a veth pair.
# A QEMU workstation would instead get a tap in $NS_NET enslaved to br0.
source "$(dirname "$0")/lib.sh"

ip netns add "$NS_NET"
ip -n "$NS_NET" link set lo up
ip -n "$NS_NET" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$NS_NET" link set br0 up

attach "$NS_SRV" "$SRV_IP/24" p-srv
for hi in $LAB_HOSTS; do
  ip=${hi##*:}
  attach "$(host_ns "${hi%%:*}")" "$ip/24" "p-${ip##*.}"
done
say "network: bridge br0 in $NS_NET, $NS_SRV at $SRV_IP, $(echo $LAB_HOSTS | wc -w) workstations"
