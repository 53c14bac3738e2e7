# shellcheck shell=bash
# Shared settings and helpers of the lab scripts (sourced by up.sh, down.sh, status.sh).
#
# The lab is a lycée computer room on one Linux machine:
#   - netns "$NS_NET" holds the bridge br0 (no uplink: nothing can leave the lab);
#   - netns "$NS_SRV" (10.77.0.1/24) is parc's endpoint and the Samba AD DC of the lycée
#     (realm $REALM) plus an sshd used to administer the DC;
#   - one netns per workstation, each running a real sshd chrooted into a per-host overlayfs
#     (read-only debootstrap tree below, per-host upper layer), with its own mount, UTS and PID
#     namespaces: nothing a workstation does touches the host's filesystem.
# A workstation could later be a QEMU VM on the same bridge: everything else only needs its IP.
set -euo pipefail

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_DIR=$(realpath -m "${PARC_LAB_DIR:-$LAB_REPO/.cache/lab}")
LAB_PREFIX=${PARC_LAB_PREFIX:-parclab}
NS_NET=$LAB_PREFIX-net
NS_SRV=$LAB_PREFIX-srv
SRV_IP=10.77.0.1
REALM=LYCEE-MISTRAL.TEST
DNS_DOMAIN=lycee-mistral.test
NETBIOS=MISTRAL
DC_NAME=dc1
# Lab-only administrator password (a throwaway secret of a throwaway domain). Kept in a 0600
# file; passed to tools on stdin or in files, never in argv.
ADMIN_PASS_FILE=$LAB_DIR/secrets/admin-password
# hostname:ip of each namespace workstation; the first is the room's master. Set it empty
# (PARC_LAB_HOSTS=) for a lab whose workstations are QEMU VMs started by parc (the demo).
LAB_HOSTS=${PARC_LAB_HOSTS-"b204-master:10.77.0.10 b204-p01:10.77.0.11 b204-p02:10.77.0.12 b204-p03:10.77.0.13"}

# The lycée's own DHCP server (lab/dhcp-up.sh), which parc's proxyDHCP runs next to: on unless
# PARC_LAB_DHCP=0. It hands out 10.77.0.100-199 and the fixed addresses of $LAB_DEVICES.
LAB_DHCP=${PARC_LAB_DHCP:-1}
DHCP_IP=10.77.0.254
LAB_DEVICES=${PARC_LAB_DEVICES:-$LAB_REPO/lab/workspace/devices.csv}

say() { echo "lab: $*" >&2; }

host_ns() { echo "$LAB_PREFIX-$1"; }

lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$LAB_PREFIX-" || true; }

# Joins a new namespace to br0 by a veth pair. $1=netns $2=cidr $3=port name on the bridge.
# No IPv6 autoconfiguration from Router Advertisements (the lycée's DHCP server and parc's
# lab DHCP send some, for iPXE): a namespace keeps exactly the address it is given.
attach() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip link add "$3" netns "$NS_NET" type veth peer name eth0 netns "$1"
  ip -n "$NS_NET" link set "$3" master br0 up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.eth0.accept_ra=0
  ip -n "$1" addr add "$2" dev eth0
  ip -n "$1" link set eth0 up
}

# Installs the Debian packages the lab needs, only those missing, and says which.
ensure_packages() {
  local want=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind
              krb5-user smbclient adcli ldb-tools openssh-server openssh-client iproute2
              util-linux debootstrap dpkg-dev dnsmasq-base openssl)
  local missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing with apt-get: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
}

# Waits until a TCP port answers from inside a namespace. $1=ns $2=ip $3=port $4=tries(0.2 s)
wait_tcp() {
  local n
  for n in $(seq 1 "${4:-100}"); do
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# Seconds since the `date +%s.%N` value $1, one decimal (awk: no bc needed).
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
