#!/usr/bin/env bash
# Builds (once) and caches a Debian root filesystem made by debootstrap, for the lab's
# workstations and the image benchmarks. Prints the tree's path on stdout.
#
#   scripts/cache-rootfs.sh [VARIANT]
#
# VARIANT: `lab` (minbase + sshd, adcli, ~250 MiB) or `bench` (lab + a realistic desktop-ish
# mix, >= 1 GiB). The tree lives under $PARC_CACHE (default: <repo>/.cache, git-ignored) and is
# rebuilt only when this script's package list changes. The mirror is the machine's own apt
# configuration (/etc/apt/sources.list.d/ or /etc/apt/sources.list): nothing is hard-coded.
set -euo pipefail

variant=${1:-lab}
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${PARC_CACHE:-$repo/.cache}
suite=bookworm

base_pkgs="openssh-server,adcli,krb5-user,sssd-tools,ca-certificates,iproute2,procps,python3,dpkg-dev,zstd,e2fsprogs,util-linux,busybox"
case "$variant" in
  lab) pkgs="$base_pkgs" ;;
  bench) pkgs="$base_pkgs,python3-numpy,python3-scipy,perl,gcc,g++,libreoffice-calc-nogui,fonts-dejavu,gnome-icon-theme,vim,git" ;;
  *) echo "error: unknown variant '$variant' (lab | bench)" >&2; exit 2 ;;
esac

say() { echo "cache-rootfs: $*" >&2; }

# The mirror, from the machine's apt configuration (deb822 or one-line format).
mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | grep -v security | awk '{print $2}' | head -n1 || true)
  fi
  [ -n "$uri" ] || { say "no Debian mirror found in /etc/apt; cannot debootstrap"; exit 1; }
  echo "$uri"
}

key=$(printf '%s %s %s' "$suite" "$pkgs" "$(uname -m)" | sha256sum | cut -c1-12)
dest="$cache/rootfs/$variant-$key"
if [ -f "$dest/.parc-complete" ]; then
  echo "$dest"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (apt-get)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$dest")"
trap 'rm -rf "$tmp"' EXIT
say "debootstrap $suite ($variant) into $dest — a few minutes, once"
debootstrap --variant=minbase --include="$pkgs" "$suite" "$tmp" "$(mirror)" >&2
rm -rf "$tmp"/var/cache/apt/archives/*.deb
touch "$tmp/.parc-complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
