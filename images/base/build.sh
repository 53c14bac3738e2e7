#!/usr/bin/env bash
# Builds the lab's base OS image `base/debian-12-amd64` and puts it in a workspace's image store:
# the lab's debootstrap tree (scripts/cache-rootfs.sh lab) + the boot environment's Debian
# kernel and initramfs in /boot + extlinux.conf (the initramfs mounts LABEL=parc-root and
# switches to it) + a busybox init that brings DHCP and sshd up (rootfs/ here). A `format`
# task lays this image down on the master (images/README.md).
#
#   images/base/build.sh [--bootenv DIR] WORKSPACE
#
# --bootenv: a built boot environment (default: images/bootenv/build.sh's). env: PARC_CACHE
# (default <repo>/.cache), PARC_BIN (the parc binary; default: cargo build --bin parc).
# The image is cached in $PARC_CACHE/base/<hash of the inputs>: the tree's key, the boot
# environment's hash, this script, rootfs/, layout.toml and parc's version; it is rebuilt
# only when one changes. Copying it into a workspace hard-links the streams (same filesystem)
# or copies them. Prints the image's folder in the workspace (last line). Needs root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=$(realpath -m "${PARC_CACHE:-$REPO/.cache}")
export PARC_CACHE=$CACHE
ID=base/debian-12-amd64
say() { echo "base-image: $*" >&2; }
T0=$(date +%s.%N)

BOOTENV=
while [ $# -gt 0 ]; do
  case $1 in
    --bootenv) BOOTENV=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) say "unknown option $1"; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { say "usage: images/base/build.sh [--bootenv DIR] WORKSPACE"; exit 2; }
WS=$1
[ "$(id -u)" = 0 ] || { say "needs root (the tree holds root-only files)"; exit 2; }

PARC=${PARC_BIN:-}
if [ -z "$PARC" ]; then
  (cd "$REPO" && cargo build --bin parc >&2)
  PARC=$REPO/target/debug/parc
fi
[ -x "$PARC" ] || { say "parc binary $PARC is missing"; exit 2; }
TREE=$("$REPO/scripts/cache-rootfs.sh" lab | tail -n1)
[ -n "$BOOTENV" ] || BOOTENV=$("$REPO/images/bootenv/build.sh" | tail -n1)
for f in vmlinuz initrd.img; do
  [ -f "$BOOTENV/$f" ] || { say "$BOOTENV has no $f (not a boot environment)"; exit 2; }
done

INPUTS=$( {
  echo "tree $(basename "$TREE")"
  echo "bootenv $(basename "$BOOTENV") $(cat "$BOOTENV/vmlinuz" "$BOOTENV/initrd.img" | sha256sum | cut -c1-16)"
  echo "build.sh $(sha256sum < "$HERE/build.sh" | cut -d' ' -f1)"
  echo "layout $(sha256sum < "$HERE/layout.toml" | cut -d' ' -f1)"
  (cd "$HERE/rootfs" && find . -type f | LC_ALL=C sort | xargs sha256sum)
  echo "parc $("$PARC" --version)"
} )
HASH=$(echo "$INPUTS" | sha256sum | cut -c1-16)
OUT=$CACHE/base/$HASH
if [ -f "$OUT/images/$ID/manifest.toml" ]; then
  say "cached: $OUT"
else
  mkdir -p "$CACHE/base"
  WORK=$(mktemp -d "$CACHE/base/work.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  R=$WORK/root
  say "building $HASH from $TREE"
  cp -a --reflink=auto "$TREE" "$R"
  rm -f "$R/.parc-complete"
  # No documentation (as Debian's slim images); no host key shared by every machine.
  rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/locale/*
  rm -f "$R"/etc/ssh/ssh_host_*
  cp -a "$HERE/rootfs/." "$R/"
  # busybox provides init, reboot, poweroff and halt where Debian (without systemd) has none.
  for a in sbin/init sbin/reboot sbin/poweroff sbin/halt; do
    [ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /bin/busybox "$R/$a"
  done
  echo debian > "$R/etc/hostname"
  mkdir -p "$R/boot/extlinux" "$R/root/.ssh"
  chmod 0700 "$R/root/.ssh"
  cp "$BOOTENV/vmlinuz" "$R/boot/vmlinuz"
  cp "$BOOTENV/initrd.img" "$R/boot/initrd.img"
  cat > "$R/boot/extlinux/extlinux.conf" <<'CONF'
# parc lab OS: extlinux (re-installed by parc-agent after every deploy) boots the boot
# environment's kernel; its initramfs mounts parc.root and switches to /sbin/init (busybox).
SERIAL 0 115200
DEFAULT parc
PROMPT 0
TIMEOUT 0
LABEL parc
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND root=LABEL=parc-root parc.root=LABEL=parc-root console=tty0 console=ttyS0,115200 panic=10
CONF
  "$PARC" image import "$ID" --tree "$R" --layout "$HERE/layout.toml" \
    --source "debootstrap $(basename "$TREE")" -w "$WORK/ws" >&2
  echo "$INPUTS" > "$WORK/ws/inputs.txt"
  rm -rf "$OUT"; mv "$WORK/ws" "$OUT"
  # Keep the three most recent builds.
  ls -1dt "$CACHE"/base/*/ | grep -v '/work\.' | tail -n +4 | xargs -r rm -rf
fi

# Into the workspace's store: hard links when on the same filesystem, else a copy; staged, then
# renamed into place (the store never shows a half image).
DEST=$WS/images/$ID
if [ -f "$DEST/manifest.toml" ] && cmp -s "$DEST/manifest.toml" "$OUT/images/$ID/manifest.toml"; then
  say "$DEST is up to date"
else
  mkdir -p "$(dirname "$DEST")"
  STAGE=$(dirname "$DEST")/.staging-$(basename "$DEST")-$$
  rm -rf "$STAGE"
  cp -al "$OUT/images/$ID" "$STAGE" 2>/dev/null || cp -a "$OUT/images/$ID" "$STAGE"
  rm -rf "$DEST"; mv "$STAGE" "$DEST"
fi
say "$ID ready in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$T0}") s: $(du -sh "$DEST" | cut -f1)"
echo "$DEST"
