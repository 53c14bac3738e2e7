#!/usr/bin/env bash
# P1 — capture throughput: parc's pipeline (name-sorted tar → multi-threaded zstd with parc's
# default settings, level 2 with a 16 MiB window → sha256, each stage on its own thread) against
# the GNU pipeline `tar -cf - | zstd -3 -T0 | tee >(sha256sum)`, on the same cached debootstrap
# tree (>= 1 GiB), measured alternately in the same run.
#
#   scripts/bench-capture.sh [ROUNDS]      (default 3 rounds; best time of each kept)
#
# Prints both times, throughputs and compression ratios, and the speedup (target >= 1.2x at
# the same or better ratio). Needs root (the tree has root-only files).
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

tree=$("$repo/scripts/cache-rootfs.sh" bench)
say "building parc-agent (release)"
(cd "$repo" && cargo build --release --quiet --bin parc-agent)
agent=$repo/target/release/parc-agent

work=$(mktemp -d "${TMPDIR:-/tmp}/parc-bench-capture.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "warming the page cache with the tree ($(du -sh "$tree" | cut -f1))"
tar -cf - -C "$tree" . >/dev/null

# Each side runs under bash's `time` (wall, user and system CPU of the whole pipeline).
TIMEFORMAT='%R %U %S'
best_parc=""; best_gnu=""; cpu_parc=""; cpu_gnu=""
for i in $(seq "$rounds"); do
  { time "$agent" archive --source-dir "$tree" --output "$work/parc.tar.zst" >"$work/parc.json" ; } 2>"$work/t.parc"
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
mib() { echo "$1 / 1048576" | bc -l; }
printf 'P1 capture of %s (%.0f MiB as tar), %s rounds, best of each; load average %s\n' "$tree" "$(mib "$raw")" "$rounds" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  parc          : %6.2f s  %7.1f MiB/s  ratio %.3f  cpu %.1f s\n' "$best_parc" "$(echo "$(mib "$raw") / $best_parc" | bc -l)" "$(echo "$raw / $parc_z" | bc -l)" "$cpu_parc"
printf '  tar|zstd|tee  : %6.2f s  %7.1f MiB/s  ratio %.3f  cpu %.1f s\n' "$best_gnu" "$(echo "$(mib "$gnu_raw") / $best_gnu" | bc -l)" "$(echo "$gnu_raw / $gnu_z" | bc -l)" "$cpu_gnu"
printf '  speedup       : %.2fx (target >= 1.2x)\n' "$(echo "($raw / $best_parc) / ($gnu_raw / $best_gnu)" | bc -l)"
