#!/usr/bin/env bash
# Reports what runs in the lab: each namespace, its role, address, processes and whether its
# service answers. `--check` prints nothing useful and exits 0 only when everything is up.
source "$(dirname "$0")/lib.sh"
check=0; [ "${1:-}" = --check ] && check=1
ok=1
line() { [ $check = 1 ] || printf '%-22s %-12s %-12s %-6s %s\n' "$@"; }
svc() { wait_tcp "$NS_SRV" "$1" "$2" 1 && echo up || { ok=0; echo DOWN; }; }
present() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
npids() { ip netns pids "$1" 2>/dev/null | wc -l; }

line NAMESPACE ROLE ADDRESS PIDS SERVICES
if ! present "$NS_NET" || ! present "$NS_SRV"; then
  [ $check = 1 ] || echo "lab is down (no namespace $NS_NET / $NS_SRV)"
  exit 1
fi
line "$NS_NET" bridge - "$(npids "$NS_NET")" "br0 (no uplink)"
line "$NS_SRV" "dc+endpoint" "$SRV_IP" "$(npids "$NS_SRV")" \
  "ldap:$(svc $SRV_IP 389) kerberos:$(svc $SRV_IP 88) ssh:$(svc $SRV_IP 22) realm $REALM"
if [ "$LAB_DHCP" != 0 ]; then
  ns=$(host_ns dhcp); pidf=$LAB_DIR/dhcp-dhcp/dnsmasq.pid
  if present "$ns" && [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    line "$ns" "lycee-dhcp" "$DHCP_IP" "$(npids "$ns")" \
      "dhcp:up 10.77.0.100-199 + $(grep -c '^dhcp-host=' "$LAB_DIR/dhcp-dhcp/dnsmasq.conf") fixed, no PXE"
  else
    ok=0; line "$ns" "lycee-dhcp" "$DHCP_IP" 0 "DOWN"
  fi
fi
for hi in $LAB_HOSTS; do
  n=${hi%%:*}; ip=${hi##*:}; ns=$(host_ns "$n")
  if present "$ns"; then
    line "$ns" workstation "$ip" "$(npids "$ns")" "ssh:$(svc "$ip" 22) host $n"
  else
    ok=0; line "$ns" workstation "$ip" 0 "MISSING"
  fi
done
[ -f "$LAB_DIR/lab.env" ] || ok=0
[ $ok = 1 ]
