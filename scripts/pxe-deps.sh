#!/usr/bin/env bash
# Installs the Debian packages parc serve, the boot environment and the PXE tests need, only
# those missing: QEMU with its iPXE ROMs, Debian's iPXE binaries (undionly.kpxe, ipxe.efi,
# snponly.efi), dnsmasq (no service), busybox-static, kmod, cpio, the TFTP clients of the tests.
set -euo pipefail
want=(qemu-system-x86 ipxe-qemu ipxe dnsmasq-base busybox-static kmod cpio iproute2 tftp-hpa atftp
      fdisk util-linux mount e2fsprogs dosfstools extlinux syslinux-common)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "error: missing packages ${missing[*]}; install them as root" >&2; exit 2; }
echo "pxe-deps: installing with apt-get: ${missing[*]}" >&2
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
  --no-install-recommends "${missing[@]}" >&2
