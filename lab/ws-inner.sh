#!/bin/sh
# Runs inside a workstation's namespaces (net from `ip netns exec`, private mount, UTS, PID 1):
# mounts the overlay root and the API filesystems, then execs sshd chrooted into it.
# $1=hostname $2=lower tree $3=host state folder $4=folder holding authorized_keys
set -eu
name=$1; lower=$2; H=$3; access=$4; R=$H/root
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$H/upper,workdir=$H/work" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755,size=16m tmpfs "$R/dev"
for d in null zero full random urandom tty; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mkdir -p "$R/run/sshd"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mount --bind -o ro "$access" "$R/etc/ssh/lab-access"
hostname "$name"
exec chroot "$R" /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config.parc-lab
