#!/usr/bin/env bash
# The Debian packages parc serve, the boot environment and the PXE tests need: QEMU with its
# iPXE ROMs, Debian's iPXE binaries (undionly.kpxe, ipxe.efi, snponly.efi), dnsmasq (no
# service), busybox-static, kmod, cpio, the TFTP clients of the tests, the agent's disk tools,
# the SSH client the PXE test logs into the installed system with, partclone and ntfs-3g (Windows disks),
# udpcast (a room's multicast: udp-sender on the endpoint, udp-receiver in the boot environment).
exec "$(dirname "$0")/ensure-packages.sh" qemu-system-x86 ipxe-qemu ipxe dnsmasq-base \
  busybox-static kmod cpio iproute2 tftp-hpa atftp fdisk util-linux mount e2fsprogs dosfstools \
  extlinux syslinux-common ovmf ca-certificates openssh-client partclone ntfs-3g udpcast
