#!/usr/bin/env bash
# P1 — capture throughput: parc's pipeline as captures run it (name-sorted tar → FastCDC
# chunks, each compressed alone at zstd level 1 on all cores → sha256, each stage on its own
# thread; ARCHIVE_ARGS=--no-chunks: one multi-threaded zstd stream, level 2 with a 16 MiB
# window, as before the chunk store) against the GNU pipeline
# `tar -cf - | zstd -3 -T0 | tee >(sha256sum)`, on the same cached debootstrap tree
# (>= 1 GiB), measured alternately in the same run. Chunks cost ratio (2.58 against 3.15 on
# the bench tree: each 16 KiB chunk is compressed without its neighbours); the store gives it
# back many times over across images and reimages (scripts/bench-store.sh).
#
#   scripts/bench-capture.sh [ROUNDS]      (default 3 rounds; best time of each kept)
#
# Prints both times, throughputs and compression ratios, and the speedup (target >= 1.2x at
# the same or better ratio). Needs root (the tree has root-only files).
#
# The NTFS case (CASES="tree ntfs" by default; CASES=ntfs runs it alone): a >= 1 GiB NTFS
# volume in a loop device, filled through ntfs-3g with the same tree's files. Capture: parc's
# (partclone.ntfs -c → parc's zstd → sha256, `parc-agent archive --ntfs`) against what FOG
# and Clonezilla run, `partclone.ntfs -c | zstd -3 -T0 | sha256sum`. Deploy of each side's
# image onto a second volume: parc's (`parc-agent restore-ntfs`: sha256 → zstd -d →
# partclone.ntfs -r, the deploy pipeline) against `zstd -d | partclone.ntfs -r`.
set -euo pipefail

rounds=${1:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
say() { echo "bench-capture: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (the tree holds root-only files)"; exit 2; }
for tool in tar zstd sha256sum bc; do
  command -v "$tool" >/dev/null || {
    say "installing $tool (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tar zstd coreutils bc >&2
  }
done

cases=${CASES:-tree ntfs}
read -r -a archive_args <<<"${ARCHIVE_ARGS:-}"
tree=$("$repo/scripts/cache-rootfs.sh" bench)
say "building parc-agent (release)"
(cd "$repo" && cargo build --release --quiet --bin parc-agent)
agent=$repo/target/release/parc-agent

work=$(mktemp -d "${TMPDIR:-/var/tmp}/parc-bench-capture.XXXXXX")
devs=()
cleanup() {
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
mib() { echo "$1 / 1048576" | bc -l; }
TIMEFORMAT='%R %U %S'
# best NAME WALL USER SYS: keeps the fastest round of NAME (wall and CPU).
declare -A best cpu
best() {
  if [ -z "${best[$1]:-}" ] || [ "$(echo "$2 < ${best[$1]}" | bc -l)" = 1 ]; then
    best[$1]=$2; cpu[$1]=$(echo "$3 + $4" | bc -l)
  fi
}

if [[ " $cases " == *" tree "* ]]; then

say "warming the page cache with the tree ($(du -sh "$tree" | cut -f1))"
tar -cf - -C "$tree" . >/dev/null

# Each side runs under bash's `time` (wall, user and system CPU of the whole pipeline).
best_parc=""; best_gnu=""; cpu_parc=""; cpu_gnu=""
for i in $(seq "$rounds"); do
  { time "$agent" archive --source-dir "$tree" --output "$work/parc.tar.zst" "${archive_args[@]}" >"$work/parc.json" ; } 2>"$work/t.parc"
  { time { tar -cf - -C "$tree" . | zstd -3 -T0 -q | tee >(sha256sum >"$work/gnu.sum") >"$work/gnu.tar.zst"; } ; } 2>"$work/t.gnu"
  read -r p pu ps <"$work/t.parc"; read -r g gu gs <"$work/t.gnu"
  say "round $i: parc $p s (cpu $(echo "$pu + $ps" | bc -l) s), GNU pipeline $g s (cpu $(echo "$gu + $gs" | bc -l) s)"
  if [ -z "$best_parc" ] || [ "$(echo "$p < $best_parc" | bc -l)" = 1 ]; then best_parc=$p; cpu_parc=$(echo "$pu + $ps" | bc -l); fi
  if [ -z "$best_gnu" ] || [ "$(echo "$g < $best_gnu" | bc -l)" = 1 ]; then best_gnu=$g; cpu_gnu=$(echo "$gu + $gs" | bc -l); fi
done

# Both archive the same tree; the uncompressed size is parc's tar stream.
raw=$(sed -E 's/.*"uncompressed_size":([0-9]+).*/\1/' "$work/parc.json")
parc_sha=$(sed -E 's/.*"sha256":"sha256:([0-9a-f]+)".*/\1/' "$work/parc.json")
[ "$parc_sha" = "$(sha256sum "$work/parc.tar.zst" | cut -d' ' -f1)" ] || { say "parc's digest does not match its output"; exit 1; }
gnu_raw=$(zstd -dc "$work/gnu.tar.zst" | wc -c)
parc_z=$(stat -c %s "$work/parc.tar.zst"); gnu_z=$(stat -c %s "$work/gnu.tar.zst")
printf 'P1 capture of %s (%.0f MiB as tar), %s rounds, best of each; load average %s\n' "$tree" "$(mib "$raw")" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  parc          : %6.2f s  %7.1f MiB/s  ratio %.3f  cpu %.1f s\n' "$best_parc" "$(echo "$(mib "$raw") / $best_parc" | bc -l)" "$(echo "$raw / $parc_z" | bc -l)" "$cpu_parc"
printf '  tar|zstd|tee  : %6.2f s  %7.1f MiB/s  ratio %.3f  cpu %.1f s\n' "$best_gnu" "$(echo "$(mib "$gnu_raw") / $best_gnu" | bc -l)" "$(echo "$gnu_raw / $gnu_z" | bc -l)" "$cpu_gnu"
printf '  speedup       : %.2fx (target >= 1.2x)\n' "$(echo "($raw / $best_parc) / ($gnu_raw / $best_gnu)" | bc -l)"
fi

if [[ " $cases " == *" ntfs "* ]]; then
"$repo/scripts/ensure-packages.sh" ntfs-3g partclone cpio
tree_mib=$(du -sm "$tree" | cut -f1)
vol_mib=$(( tree_mib * 3 / 2 + 512 )); [ "$vol_mib" -ge 1024 ] || vol_mib=1024
truncate -s "${vol_mib}M" "$work/src.img" "$work/dst.img"
src=$(losetup --find --show "$work/src.img"); devs+=("$src")
dst=$(losetup --find --show "$work/dst.img"); devs+=("$dst")
mkntfs -Q -q -L bench "$src" 2>/dev/null
mkdir -p "$work/mnt"
ntfs-3g -o streams_interface=windows "$src" "$work/mnt"
say "filling a $vol_mib MiB NTFS volume with $tree ($tree_mib MiB) through ntfs-3g"
# Sockets, devices and fifos have no place on NTFS; owners neither.
(cd "$tree" && find . -xdev \( -type f -o -type d -o -type l \) -print0 \
  | cpio -0 -p -d -m --quiet "$work/mnt" 2>/dev/null) || true
umount "$work/mnt"
say "warming the page cache with the volume"
cat "$work/src.img" >/dev/null
for i in $(seq "$rounds"); do
  { time "$agent" archive --ntfs "$src" --output "$work/parc.ntfs.zst" "${archive_args[@]}" >"$work/parc-ntfs.json" ; } 2>"$work/t"
  read -r w u s <"$work/t"; best ntfs-parc "$w" "$u" "$s"; say "round $i: parc capture $w s"
  { time { partclone.ntfs -c -q -s "$src" -o - 2>/dev/null | zstd -3 -T0 -q | tee >(sha256sum >"$work/pc.sum") >"$work/pc.ntfs.zst"; } ; } 2>"$work/t"
  read -r w u s <"$work/t"; best ntfs-pc "$w" "$u" "$s"; say "round $i: partclone|zstd|sha256sum capture $w s"
done
raw=$(sed -E 's/.*"uncompressed_size":([0-9]+).*/\1/' "$work/parc-ntfs.json")
sha=$(sed -E 's/.*"sha256":"(sha256:[0-9a-f]+)".*/\1/' "$work/parc-ntfs.json")
[ "${sha#sha256:}" = "$(sha256sum "$work/parc.ntfs.zst" | cut -d' ' -f1)" ] || { say "parc's NTFS digest does not match its output"; exit 1; }
pc_raw=$(zstd -dc "$work/pc.ntfs.zst" | wc -c)
parc_z=$(stat -c %s "$work/parc.ntfs.zst"); pc_z=$(stat -c %s "$work/pc.ntfs.zst")
for i in $(seq "$rounds"); do
  { time "$agent" restore-ntfs --input "$work/parc.ntfs.zst" --sha256 "$sha" --size "$parc_z" --target "$dst" >/dev/null ; } 2>"$work/t"
  read -r w u s <"$work/t"; best ntfs-parc-deploy "$w" "$u" "$s"; say "round $i: parc deploy $w s"
  { time { zstd -dc "$work/pc.ntfs.zst" | partclone.ntfs -r -q -s - -o "$dst" 2>/dev/null; } ; } 2>"$work/t"
  read -r w u s <"$work/t"; best ntfs-pc-deploy "$w" "$u" "$s"; say "round $i: zstd -d|partclone -r deploy $w s"
done
# parc's deploy leaves a volume that checks, backup boot sector included (partclone alone
# leaves that sector as the disk held it: ntfsfix -n fails after the baseline's restore).
"$agent" restore-ntfs --input "$work/parc.ntfs.zst" --sha256 "$sha" --size "$parc_z" --target "$dst" >/dev/null
ntfsfix -n "$dst" >/dev/null 2>&1 || { say "parc's deployed volume does not check as NTFS"; exit 1; }
printf 'P1 NTFS: %s MiB volume, %.0f MiB used (partclone image), %s rounds, best of each; load average %s\n' "$vol_mib" "$(mib "$raw")" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
row() { printf '  %-30s: %6.2f s  %7.1f MiB/s  cpu %5.1f s%s\n' "$1" "${best[$2]}" "$(echo "$(mib "$3") / ${best[$2]}" | bc -l)" "${cpu[$2]}" "$4"; }
row "parc capture" ntfs-parc "$raw" "$(printf '  ratio %.3f' "$(echo "$raw / $parc_z" | bc -l)")"
row "partclone|zstd -3|sha256sum" ntfs-pc "$pc_raw" "$(printf '  ratio %.3f' "$(echo "$pc_raw / $pc_z" | bc -l)")"
printf '  capture speedup               : %.2fx (target >= 1.2x)\n' "$(echo "${best[ntfs-pc]} / ${best[ntfs-parc]}" | bc -l)"
row "parc deploy (verified)" ntfs-parc-deploy "$raw" ""
row "zstd -d|partclone -r" ntfs-pc-deploy "$pc_raw" ""
printf '  deploy speedup                : %.2fx\n' "$(echo "${best[ntfs-pc-deploy]} / ${best[ntfs-parc-deploy]}" | bc -l)"
fi
