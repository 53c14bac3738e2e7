# Sourced by the bench scripts: a server and a workstation in two network namespaces joined
# by one veth pair shaped to a rate in both directions (tc tbf), as a lycée's switch port is.
#
#   shaped_link_up NAME NET RATE   namespaces NAME-srv (NET.1) and NAME-ws (NET.2), /24
#   shaped_link_down NAME          kills what runs in them and deletes them (always succeeds)
#
# NAME is short (the veth ends are named after it: at most 15 characters), NET three octets.

shaped_link_down() {
  local ns p
  for ns in "$1-ws" "$1-srv"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

shaped_link_up() {
  local name=$1 net=$2 rate=$3 ns
  shaped_link_down "$name"
  ip netns add "$name-srv"
  ip netns add "$name-ws"
  ip link add "v$name-s" netns "$name-srv" type veth peer name "v$name-w" netns "$name-ws"
  ip -n "$name-srv" addr add "$net.1/24" dev "v$name-s"
  ip -n "$name-ws" addr add "$net.2/24" dev "v$name-w"
  for ns in "$name-srv" "$name-ws"; do ip -n "$ns" link set lo up; done
  ip -n "$name-srv" link set "v$name-s" up
  ip -n "$name-ws" link set "v$name-w" up
  # Shape both directions; an image flows server → workstation.
  ip netns exec "$name-srv" tc qdisc add dev "v$name-s" root tbf rate "$rate" burst 512kb latency 20ms
  ip netns exec "$name-ws" tc qdisc add dev "v$name-w" root tbf rate "$rate" burst 512kb latency 20ms
}
