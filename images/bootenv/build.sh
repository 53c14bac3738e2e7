#!/usr/bin/env bash
# Builds parc's boot environment: the Debian kernel and a busybox initramfs holding parc-agent
# and the disk tools it calls (images/AGENT-RUNTIME.md), with images/bootenv/init as /init.
#
#   images/bootenv/build.sh [PARC_AGENT_BINARY]
#
# Without an argument, parc-agent is built with `cargo build --release --bin parc-agent`
# (the lab tests pass their debug build; its debug info is stripped in the initramfs).
# Output: $PARC_CACHE/bootenv/<hash of the inputs>/{vmlinuz,initrd.img,inputs.txt}; the folder
# is printed on stdout (the last line). The hash covers this script, /init, the agent binary and
# the exact versions of every Debian package used, so the build reruns only when one changes.
# Needs root for apt-get (only when a package is missing). env: PARC_CACHE (default <repo>/.cache)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=$(realpath -m "${PARC_CACHE:-$REPO/.cache}")
say() { echo "bootenv: $*" >&2; }
T0=$(date +%s.%N)

# The disk tools and bootloader installer parc-agent calls, and the packages carrying them.
TOOL_PKGS=(busybox-static kmod cpio fdisk util-linux mount e2fsprogs dosfstools extlinux syslinux-common
           ca-certificates partclone ntfs-3g udpcast)
TOOLS=(/usr/sbin/sfdisk /usr/sbin/losetup /usr/bin/mount /usr/bin/umount /usr/sbin/blkid
       /usr/sbin/mkswap /usr/sbin/wipefs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck /usr/sbin/resize2fs
       /usr/sbin/mkfs.vfat /usr/bin/extlinux
       /usr/sbin/partclone.ntfs /usr/sbin/partclone.fat /usr/sbin/mkntfs /usr/sbin/ntfsresize
       /usr/sbin/ntfslabel /usr/sbin/ntfscp /usr/bin/ntfscat /usr/bin/ntfsls
       /usr/bin/udp-receiver)
# NIC, disk, filesystem and loop modules (missing ones are skipped by /init).
MODULES="virtio_pci virtio_net virtio_blk virtio_scsi e1000 e1000e r8169 igb tg3 ahci sd_mod nvme
loop ext4 vfat nls_cp437 nls_iso8859_1 crc32c_generic virtio_rng"

missing=()
for p in "${TOOL_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing with apt-get: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
fi

# The kernel: the package linux-image-amd64 currently depends on (downloaded, not installed).
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { say "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"; exit 1; }
KVERSION=$(apt-cache policy "$KPKG" | awk '/Candidate:/{print $2}')

AGENT=${1:-}
if [ -z "$AGENT" ]; then
  say "building parc-agent (cargo build --release --bin parc-agent)"
  (cd "$REPO" && cargo build --release --bin parc-agent >&2)
  AGENT=$REPO/target/release/parc-agent
fi
[ -x "$AGENT" ] || { say "parc-agent binary $AGENT is missing or not executable"; exit 2; }

INPUTS=$( {
  echo "kernel $KPKG $KVERSION"
  for p in "${TOOL_PKGS[@]}"; do dpkg-query -W -f='pkg ${Package} ${Version}\n' "$p"; done
  echo "modules $MODULES"
  echo "build.sh $(sha256sum < "$HERE/build.sh" | cut -d' ' -f1)"
  echo "init $(sha256sum < "$HERE/init" | cut -d' ' -f1)"
  echo "parc-agent $(sha256sum < "$AGENT" | cut -d' ' -f1)"
} )
HASH=$(echo "$INPUTS" | sha256sum | cut -c1-16)
OUT=$CACHE/bootenv/$HASH
if [ -f "$OUT/initrd.img" ] && [ -f "$OUT/vmlinuz" ]; then
  say "cached: $OUT"
  echo "$OUT"; exit 0
fi

WORK=$(mktemp -d "$CACHE/bootenv-work.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE"; mktemp -d "$CACHE/bootenv-work.XXXXXX"; })
trap 'rm -rf "$WORK"' EXIT
say "building $HASH in $WORK"

# Kernel package: downloaded into the cache once per version, unpacked, depmod run on it
# (the .deb ships no modules.dep: its postinst makes it).
DEBS=$CACHE/bootenv/debs; mkdir -p "$DEBS"
DEB=$(ls "$DEBS/${KPKG}_${KVERSION//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$DEB" ]; then
  say "downloading $KPKG $KVERSION"
  (cd "$DEBS" && apt-get download "$KPKG=$KVERSION" >&2)
  DEB=$(ls "$DEBS/${KPKG}_"*.deb | head -1)
fi
K=$WORK/kernel; mkdir -p "$K"
dpkg-deb -x "$DEB" "$K"
KVER=$(ls "$K/lib/modules" | head -1)
depmod -b "$K" "$KVER"

R=$WORK/root
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,usr/bin,usr/sbin,usr/local/bin,lib/modules/$KVER}
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf /bin/busybox "$R/bin/$a"; done

# Modules with their dependencies (modprobe resolves them on the unpacked tree).
for m in $MODULES; do
  for f in $(modprobe -d "$K" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}'); do
    rel=${f#"$K"}; mkdir -p "$R$(dirname "$rel")"; cp "$f" "$R$rel"
  done
done
cp "$K/lib/modules/$KVER"/modules.{order,builtin} "$R/lib/modules/$KVER/"
[ -f "$K/lib/modules/$KVER/modules.builtin.modinfo" ] && cp "$K/lib/modules/$KVER/modules.builtin.modinfo" "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"
echo $MODULES > "$R/etc/parc-modules"

# Real tools (not busybox applets: AGENT-RUNTIME.md) and their shared libraries.
copy_with_libs() {
  local b=$1 dest=$2 l
  mkdir -p "$R$(dirname "$dest")"; cp -L "$b" "$R$dest"
  for l in $(ldd "$b" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$R$l" ] || { mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; }
  done
}
for t in "${TOOLS[@]}"; do
  [ -x "$t" ] || { say "missing tool $t"; exit 1; }
  rm -f "$R$t"; copy_with_libs "$t" "$t"
done
ln -sf mkfs.ext4 "$R/usr/sbin/mkfs.ext2"
cp /etc/mke2fs.conf "$R/etc/"
# parc-agent's HTTP client (reqwest + rustls) refuses to start without the system's CA list,
# even for the plain-HTTP endpoint.
mkdir -p "$R/etc/ssl/certs"; cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
mkdir -p "$R/usr/lib/syslinux"; cp -r /usr/lib/syslinux/mbr "$R/usr/lib/syslinux/" 2>/dev/null || true
# partclone writes its log to /var/log/partclone.log.
mkdir -p "$R/var/log"
copy_with_libs "$AGENT" /usr/local/bin/parc-agent
# A debug build carries ~150 MB of debug info the initramfs does not need.
if [ "$(head -c 4 "$AGENT" | tr -d '\0')" = "$(printf '\177ELF')" ]; then
  strip --strip-debug "$R/usr/local/bin/parc-agent"
fi

cat > "$R/etc/udhcpc.script" <<'SCRIPT'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" broadcast "${broadcast:-+}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "parc-bootenv: $interface $ip/${mask}" ;;
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
esac
exit 0
SCRIPT
chmod +x "$R/etc/udhcpc.script"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
install -m 0755 "$HERE/init" "$R/init"

mkdir -p "$WORK/out"
cp "$K/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) > "$WORK/out/initrd.img"
echo "$INPUTS" > "$WORK/out/inputs.txt"
mkdir -p "$CACHE/bootenv"
rm -rf "$OUT"; mv "$WORK/out" "$OUT"
# Keep the four most recent builds (every agent rebuild makes a new one).
ls -1dt "$CACHE"/bootenv/*/ | grep -v '/debs/$' | tail -n +5 | xargs -r rm -rf
say "built $OUT in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$T0}") s: kernel $KVER, initrd $(du -h "$OUT/initrd.img" | cut -f1)"
echo "$OUT"
