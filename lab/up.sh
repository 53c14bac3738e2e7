#!/usr/bin/env bash
# Brings the lab up (idempotent): packages, isolated network, Samba AD DC, workstations.
# Prints what runs (status.sh) and writes $PARC_LAB_DIR/lab.env for the tests.
#   lab/up.sh            (root)     env: PARC_LAB_DIR, PARC_CACHE, PARC_LAB_PREFIX, PARC_LAB_HOSTS,
#                                          PARC_LAB_DHCP (0: no lycée DHCP server), PARC_LAB_DEVICES
source "$(dirname "$0")/lib.sh"
X=$(dirname "$(realpath "$0")")

[ "$(id -u)" = 0 ] || { echo "error: the lab needs root (network namespaces, mounts)" >&2; exit 2; }

if "$X/status.sh" --check >/dev/null 2>&1; then
  say "already up"
  "$X/status.sh"
  exit 0
fi
# Half-up or stale: start from a clean slate.
"$X/down.sh" >/dev/null 2>&1 || true
trap 'rc=$?; [ $rc = 0 ] || { say "up failed (exit $rc); tearing down"; "$X/down.sh" >&2 || true; }' EXIT

ensure_packages
ROOTFS=$("$LAB_REPO/scripts/cache-rootfs.sh" lab)
say "workstation root filesystem (read-only lower layer): $ROOTFS"

mkdir -p "$LAB_DIR"/{keys,access,secrets,hosts}
chmod 0700 "$LAB_DIR/secrets"
touch "$LAB_DIR/access/authorized_keys"

T0=$(date +%s.%N)
"$X/net-up.sh"
dhcp_env=
if [ "$LAB_DHCP" != 0 ]; then
  # The lycée's DHCP server knows the workstations of the inventory that have a fixed address.
  fixed=$LAB_DIR/dhcp-fixed.txt
  [ -f "$LAB_DEVICES" ] || { say "no inventory $LAB_DEVICES (PARC_LAB_DEVICES)"; exit 1; }
  awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
             col["mac"] && col["ip"] && $col["mac"] != "" && $col["ip"] != "" {
               print $col["mac"] "," $col["ip"] }' "$LAB_DEVICES" > "$fixed"
  "$X/dhcp-up.sh" dhcp "$DHCP_IP" --addresses 10.77.0.100,10.77.0.199 --hosts "$fixed"
  dhcp_env="LAB_DHCP_IP=$DHCP_IP
LAB_DHCP_NS=$(host_ns dhcp)"
fi
# The DC provisions (the slow part) while the workstations start.
"$X/dc-up.sh" & dc=$!
for hi in $LAB_HOSTS; do
  "$X/ws-up.sh" "${hi%%:*}" "${hi##*:}" "$ROOTFS"
done
wait $dc || { say "the domain controller did not come up"; exit 1; }
for hi in $LAB_HOSTS; do
  wait_tcp "$NS_SRV" "${hi##*:}" 22 100 || { say "sshd of ${hi%%:*} does not answer"; exit 1; }
done

cat > "$LAB_DIR/lab.env" <<ENV
PARC_LAB_DIR=$LAB_DIR
LAB_PREFIX=$LAB_PREFIX
LAB_SRV_NS=$NS_SRV
LAB_SRV_IP=$SRV_IP
LAB_DC_NAME=$DC_NAME
LAB_REALM=$REALM
LAB_DNS_DOMAIN=$DNS_DOMAIN
LAB_NETBIOS=$NETBIOS
LAB_DC_SMBCONF=$LAB_DIR/dc/etc/smb.conf
LAB_DC_SAM=$LAB_DIR/dc/private/sam.ldb
LAB_ADMIN_PASS_FILE=$ADMIN_PASS_FILE
LAB_KEYS_DIR=$LAB_DIR/keys
LAB_AUTHORIZED_KEYS=$LAB_DIR/access/authorized_keys
LAB_HOSTS=$LAB_HOSTS
LAB_ROOTFS=$ROOTFS
$dhcp_env
ENV
say "up in $(elapsed "$T0") s"
trap - EXIT
"$X/status.sh"
