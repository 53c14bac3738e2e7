#!/usr/bin/env bash
# Starts a plain DHCP server on the lab's bridge, as a lycée's own one (Windows DHCP, ISC…):
# it hands out addresses, fixed ones for known MACs, the DC as DNS server and the domain, and
# knows nothing of PXE (parc's proxyDHCP answers that part). Also a Router Advertisement, so
# iPXE does not wait for IPv6 autoconfiguration.
#   lab/dhcp-up.sh NAME IP [--addresses FIRST,LAST] [--hosts FILE]      (root)
# NAME: namespace $PARC_LAB_PREFIX-NAME (joined to br0 with IP/24, bridge port p-<last octet>);
# FILE: one `mac,ip` a line (# comments). dnsmasq's config, leases, log and pid file are in
# $PARC_LAB_DIR/dhcp-NAME/. lab/dhcp-down.sh NAME (or lab/down.sh) stops it.
source "$(dirname "$0")/lib.sh"
usage() { echo "usage: $0 NAME IP [--addresses FIRST,LAST] [--hosts FILE]" >&2; exit 2; }
[ $# -ge 2 ] || usage
name=$1; ip=$2; shift 2
range=; hosts=
while [ $# -gt 0 ]; do
  case $1 in
    --addresses) [ $# -ge 2 ] || usage; range=$2; shift 2 ;;
    --hosts) [ $# -ge 2 ] || usage; hosts=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $name =~ ^[a-z0-9-]+$ ]] || { echo "error: NAME must be [a-z0-9-]+: $name" >&2; exit 2; }
[[ $ip =~ ^10\.77\.0\.([0-9]+)$ ]] || { echo "error: IP must be on the lab's 10.77.0.0/24: $ip" >&2; exit 2; }
octet=${BASH_REMATCH[1]}
ns=$(host_ns "$name")
port=p-$octet
ip netns list | awk '{print $1}' | grep -qx "$NS_NET" || { echo "error: the lab's network is not up (no $NS_NET)" >&2; exit 1; }
ip netns list | awk '{print $1}' | grep -qx "$ns" && { echo "error: namespace $ns exists already" >&2; exit 1; }
ip -n "$NS_NET" link show "$port" >/dev/null 2>&1 && { echo "error: bridge port $port (address $ip) is taken" >&2; exit 1; }

D=$LAB_DIR/dhcp-$name
rm -rf "$D"; mkdir -p "$D"
{
  echo "# lab/dhcp-up.sh: the lycée's DHCP server $name at $ip (no PXE options)"
  echo "port=0"
  echo "interface=eth0"
  echo "bind-interfaces"
  echo "dhcp-authoritative"
  echo "# offer at once: no ~3 s ping of a free address before offering it"
  echo "no-ping"
  echo "dhcp-leasefile=$D/dnsmasq.leases"
  echo "pid-file=$D/dnsmasq.pid"
  echo "log-dhcp"
  echo "log-facility=$D/dnsmasq.log"
  if [ -n "$range" ]; then
    echo "dhcp-range=${range%%,*},${range##*,},255.255.255.0,1h"
  else
    echo "dhcp-range=10.77.0.0,static,255.255.255.0,1h"
  fi
  if [ -n "$hosts" ]; then
    grep -v '^[[:space:]]*\(#\|$\)' "$hosts" | tr -d ' \r' | sed 's/^/dhcp-host=/'
  fi
  echo "dhcp-option=option:dns-server,$SRV_IP"
  echo "dhcp-option=option:domain-search,$DNS_DOMAIN"
  echo "domain=$DNS_DOMAIN"
  echo "# no router: nothing leaves the lab"
  echo "dhcp-option=option:router"
  echo "# RA without M/O flags: iPXE finishes IPv6 autoconfiguration at once"
  echo "enable-ra"
  echo "dhcp-range=::,constructor:eth0,ra-only"
} > "$D/dnsmasq.conf"

attach "$ns" "$ip/24" "$port"
# An IPv6 address for dnsmasq to construct the Router Advertisement from.
ip -n "$ns" addr add "fd77::$(printf %x "$octet")/64" dev eth0 nodad
# dnsmasq daemonizes once its sockets are bound (a bad config fails here, with its message).
if ! ip netns exec "$ns" dnsmasq --conf-file="$D/dnsmasq.conf"; then
  ip netns del "$ns" 2>/dev/null
  echo "error: dnsmasq did not start (config $D/dnsmasq.conf)" >&2
  exit 1
fi
say "DHCP server $name at $ip in $ns: addresses ${range:-none (fixed only)}, $(grep -c '^dhcp-host=' "$D/dnsmasq.conf") fixed (log $D/dnsmasq.log)"
