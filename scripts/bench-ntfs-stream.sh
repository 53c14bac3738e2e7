#!/usr/bin/env bash
# Which stream for NTFS partitions: a WIM (wimlib's NTFS-3G backend, the file-level image
# Windows' own DISM writes) or a block image of the used clusters (partclone.ntfs, what FOG and
# Clonezilla run), each compressed and hashed the way a parc stream is. Same run, same volume:
# a >= 1 GiB NTFS volume in a loop device, filled through ntfs-3g with the bench tree's files.
#
#   scripts/bench-ntfs-stream.sh [ROUNDS]      (default 2; best time of each kept)
#
# Env: BENCH_TREE=DIR fills the volume with DIR instead of `scripts/cache-rootfs.sh bench`;
# VOLUME_MIB (default: 1.5 x the tree + 512 MiB, at least 1024).
#
# Captures (each → sha256, as parc hashes its streams):
#   wim+zstd   wimlib-imagex capture DEV - --pipable --compress=none | zstd -3 -T0
#   wim-lzx    wimlib-imagex capture DEV - --pipable            (wimlib's own LZX, solid off)
#   partclone  partclone.ntfs -c -s DEV -o - | zstd -3 -T0
# Deploys onto a second volume of the same size:
#   wim+zstd   mkntfs -Q; zstd -dc | wimlib-imagex apply - 1 DEV2   (fails on the bench tree, see images/README.md)
#   partclone  zstd -dc | partclone.ntfs -r -s - -o DEV2
set -euo pipefail

rounds=${1:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
say() { echo "bench-ntfs: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (loop devices, mkntfs, ntfs-3g)"; exit 2; }
"$repo/scripts/ensure-packages.sh" wimtools ntfs-3g partclone zstd bc coreutils

tree=${BENCH_TREE:-$("$repo/scripts/cache-rootfs.sh" bench)}
tree_mib=$(( $(du -sm "$tree" | cut -f1) ))
vol_mib=${VOLUME_MIB:-$(( tree_mib * 3 / 2 + 512 ))}
[ "$vol_mib" -ge 1024 ] || vol_mib=1024

work=$(mktemp -d "${TMPDIR:-/var/tmp}/parc-bench-ntfs.XXXXXX")
devs=()
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

truncate -s "${vol_mib}M" "$work/src.img" "$work/dst.img"
src=$(losetup --find --show "$work/src.img"); devs+=("$src")
dst=$(losetup --find --show "$work/dst.img"); devs+=("$dst")
mkntfs -Q -q -L bench "$src" 2>/dev/null
mkdir "$work/mnt"
ntfs-3g -o streams_interface=windows "$src" "$work/mnt"
say "filling a $vol_mib MiB NTFS volume with $tree ($tree_mib MiB) through ntfs-3g"
# Sockets, devices and fifos have no place on NTFS; owners neither.
(cd "$tree" && find . -xdev \( -type f -o -type d -o -type l \) -print0 \
  | cpio -0 -p -d -m --quiet "$work/mnt" 2>/dev/null) || true
umount "$work/mnt"
used=$(ntfsinfo -m "$src" 2>/dev/null | awk '/Cluster Size/ {cs=$3} /Free Clusters/ {free=$3} /Volume Size in Clusters/ {tot=$5} END {print (tot-free)*cs}')
say "volume used: $(( used / 1048576 )) MiB"

TIMEFORMAT='%R %U %S'
declare -A best cpu
keep() { # name wall user sys
  local c; c=$(echo "$3 + $4" | bc -l)
  if [ -z "${best[$1]:-}" ] || [ "$(echo "$2 < ${best[$1]}" | bc -l)" = 1 ]; then best[$1]=$2; cpu[$1]=$c; fi
}
# A side that fails is reported (its error kept for the summary) and the others go on: the
# WIM apply fails on the bench tree (images/README.md), the figures of the rest still count.
declare -A failed
measure() { # name command...
  local name=$1; shift
  if ! { time "$@" 2>"$work/$name.err" ; } 2>"$work/t"; then
    failed[$name]=$(grep -m1 -i 'error' "$work/$name.err" || tail -1 "$work/$name.err")
    say "  $name failed: ${failed[$name]}"
    return 0
  fi
  read -r w u s <"$work/t"; keep "$name" "$w" "$u" "$s"
  say "  $name: $w s (cpu $(echo "$u + $s" | bc -l) s)"
}
wim_zstd()   { wimlib-imagex capture "$src" - bench --pipable --compress=none --quiet 2>/dev/null | zstd -3 -T0 -q | tee >(sha256sum >"$work/wz.sum") >"$work/wim.zst"; }
wim_lzx()    { wimlib-imagex capture "$src" - bench --pipable --quiet 2>/dev/null | tee >(sha256sum >"$work/wl.sum") >"$work/lzx.wim"; }
pc_zstd()    { partclone.ntfs -q -c -s "$src" -o - 2>/dev/null | zstd -3 -T0 -q | tee >(sha256sum >"$work/pc.sum") >"$work/pc.zst"; }
# wimlib stops reading a pipable WIM once the image's blobs are in (its XML and tables follow):
# the decompressor's broken pipe is not a failure.
wim_apply()  { mkntfs -Q -q "$dst" && { zstd -dc "$work/wim.zst" 2>/dev/null || true; } | wimlib-imagex apply - 1 "$dst" --quiet >&2; }
lzx_apply()  { mkntfs -Q -q "$dst" && wimlib-imagex apply - 1 "$dst" --quiet <"$work/lzx.wim" >&2; }
pc_restore() { zstd -dc "$work/pc.zst" | partclone.ntfs -q -r -s - -o "$dst" 2>/dev/null; }

cat "$work/src.img" >/dev/null # page cache warm for every side alike
for i in $(seq "$rounds"); do
  say "round $i"
  measure cap-wim-zstd wim_zstd
  measure cap-wim-lzx wim_lzx
  measure cap-partclone pc_zstd
  measure dep-wim-zstd wim_apply
  measure dep-wim-lzx lzx_apply
  measure dep-partclone pc_restore
done
# The volume partclone restored must check as NTFS.
pc_restore && { ntfsfix -n "$dst" >/dev/null 2>&1 || say "warning: ntfsfix -n complains about the restored volume"; }

mib() { echo "$1 / 1048576" | bc -l; }
size_of() { stat -c %s "$1"; }
printf 'NTFS stream bench: %s MiB volume, %.0f MiB used (%s), %s rounds, best of each; load average %s\n' \
  "$vol_mib" "$(mib "$used")" "$tree" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
line() { # label capture-key deploy-key file
  local cap dep
  if [ -n "${best[$2]:-}" ]; then
    cap=$(printf 'capture %6.2f s %6.1f MiB/s cpu %5.1f s' "${best[$2]}" "$(echo "$(mib "$used") / ${best[$2]}" | bc -l)" "${cpu[$2]}")
  else cap="capture FAILED: ${failed[$2]:-}"; fi
  if [ -n "${best[$3]:-}" ]; then
    dep=$(printf 'deploy %6.2f s %6.1f MiB/s' "${best[$3]}" "$(echo "$(mib "$used") / ${best[$3]}" | bc -l)")
  else dep="deploy FAILED: ${failed[$3]:-}"; fi
  local stored="-"
  [ -s "$4" ] && stored=$(printf 'stored %6.0f MiB, ratio %.3f' "$(mib "$(size_of "$4")")" "$(echo "$used / $(size_of "$4")" | bc -l)")
  printf '  %-10s %s | %s | %s\n' "$1" "$cap" "$dep" "$stored"
}
line wim+zstd cap-wim-zstd dep-wim-zstd "$work/wim.zst"
line wim-lzx cap-wim-lzx dep-wim-lzx "$work/lzx.wim"
line partclone cap-partclone dep-partclone "$work/pc.zst"
echo "  (MiB/s and ratio are of the volume's used bytes)"
