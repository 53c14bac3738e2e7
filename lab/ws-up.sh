#!/usr/bin/env bash
# Starts one namespace workstation: $1=hostname $2=ip $3=read-only root filesystem tree.
# Its disk is an overlayfs (the tree below, $LAB_DIR/hosts/<name>/upper above) mounted in the
# workstation's own mount namespace; sshd runs chrooted there with its own UTS and PID
# namespaces, so a .deb installed on the master lands in its upper layer, not on the host.
# (A QEMU workstation would replace this script: the rest of the lab only needs its IP.)
source "$(dirname "$0")/lib.sh"
name=$1; ip=$2; rootfs=$3
H=$LAB_DIR/hosts/$name
rm -rf "$H"; mkdir -p "$H"/{upper,work,root} "$H/upper/etc/ssh/lab-access" "$H/upper/etc/parc"
K=$LAB_DIR/keys
[ -f "$K/$name" ] || ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$K/$name"
u=$H/upper/etc
install -m 0600 "$K/$name" "$u/ssh/ssh_host_ed25519_key"
install -m 0644 "$K/$name.pub" "$u/ssh/ssh_host_ed25519_key.pub"
echo "$name" > "$u/hostname"
printf '127.0.0.1 localhost\n%s %s.%s %s\n%s %s.%s %s\n' "$ip" "$name" "$DNS_DOMAIN" "$name" \
  "$SRV_IP" "$DC_NAME" "$DNS_DOMAIN" "$DC_NAME" > "$u/hosts"
printf 'nameserver %s\nsearch %s\n' "$SRV_IP" "$DNS_DOMAIN" > "$u/resolv.conf"
cat > "$u/krb5.conf" <<CFG
[libdefaults]
  default_realm = $REALM
  dns_lookup_kdc = true
  dns_lookup_realm = false
  rdns = false
CFG
cat > "$u/ssh/sshd_config.parc-lab" <<CFG
Port 22
ListenAddress $ip
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile /etc/ssh/lab-access/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
CFG
ip netns exec "$(host_ns "$name")" unshare --uts --pid --fork --kill-child \
  "$(dirname "$(realpath "$0")")/ws-inner.sh" "$name" "$rootfs" "$H" "$LAB_DIR/access" \
  > "$H/sshd.log" 2>&1 &
echo $! > "$H/fg.pid"
say "workstation $name at $ip (overlay upper: $H/upper)"
