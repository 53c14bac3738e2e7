#!/usr/bin/env bash
# Installs the Debian packages given as arguments when they are missing, and says which.
# Uses the machine's own apt configuration; needs root when something is missing.
set -euo pipefail
# Two callers at once (parallel tests) would race for apt's lists lock, which
# DPkg::Lock::Timeout does not cover: one installs at a time, the next checks again.
if [ -z "${PARC_ENSURE_LOCKED:-}" ] && [ "$(id -u)" -eq 0 ] && command -v flock >/dev/null; then
  PARC_ENSURE_LOCKED=1 exec flock /run/lock/parc-ensure-packages.lock "$0" "$@"
fi
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-packages: missing ${missing[*]} and not root: install them, or run as root" >&2
  exit 1
fi
echo "ensure-packages: installing with apt-get: ${missing[*]}" >&2
apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
  --no-install-recommends "${missing[@]}" >&2
