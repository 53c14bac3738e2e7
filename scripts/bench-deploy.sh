#!/usr/bin/env bash
# P2 — deploy throughput: parc-agent deploys the bench image natively in a network namespace
# whose link to the endpoint's namespace is shaped to 1 Gbit/s (tc tbf), onto a sparse disk
# file (through loop devices). Prints the bytes of filesystem data written per second against
# the link rate (target >= 2x: compression does the rest).
#
#   scripts/bench-deploy.sh
#
# Environment: RATE (default 1gbit), DISK_DIR (folder of the sparse target disk, default
# /dev/shm so the host's disk speed does not count; set it to a disk folder to include it).
# Namespaces parcb-srv / parcb-ws and the veth pair are removed on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
rate=${RATE:-1gbit}
disk_dir=${DISK_DIR:-/dev/shm}
say() { echo "bench-deploy: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (namespaces, tc, loop devices)"; exit 2; }
"$repo/scripts/ensure-packages.sh" iproute2 fdisk e2fsprogs mount bc >&2

tree=$("$repo/scripts/cache-rootfs.sh" bench)
say "building parc-agent and the bench endpoint (release)"
(cd "$repo" && cargo build --release --quiet --bin parc-agent --example image-endpoint)
agent=$repo/target/release/parc-agent
endpoint=$repo/target/release/examples/image-endpoint

work=$(mktemp -d "${TMPDIR:-/tmp}/parc-bench-deploy.XXXXXX")
disk=$(mktemp "$disk_dir/parc-bench-disk.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del parcb-ws 2>/dev/null || true
  ip netns del parcb-srv 2>/dev/null || true
  rm -rf "$work" "$disk"
}
trap cleanup EXIT

say "capturing the bench tree into an image (loopback, not measured)"
"$endpoint" "$work/ws" 127.0.0.1:47801 "$work/token" capture bench v1 >"$work/task" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/task" ] && break; sleep 0.1; done
PARC_AGENT_TOKEN=$(cat "$work/token") "$agent" capture --endpoint http://127.0.0.1:47801 \
  --task "$(cat "$work/task")" --source "1=$tree" --report-every 5
wait "${pids[-1]}"
manifest=$work/ws/images/bench/v1/manifest.toml
raw=$(grep -E '^uncompressed-size' "$manifest" | head -1 | awk '{print $3}')
z=$(grep -E '^size' "$manifest" | head -1 | awk '{print $3}')

say "namespaces: parcb-srv (10.78.0.1) <-> parcb-ws (10.78.0.2), $rate"
ip netns del parcb-ws 2>/dev/null || true
ip netns del parcb-srv 2>/dev/null || true
ip netns add parcb-srv
ip netns add parcb-ws
ip link add vb-srv netns parcb-srv type veth peer name vb-ws netns parcb-ws
ip -n parcb-srv addr add 10.78.0.1/24 dev vb-srv
ip -n parcb-ws addr add 10.78.0.2/24 dev vb-ws
for ns in parcb-srv parcb-ws; do ip -n "$ns" link set lo up; done
ip -n parcb-srv link set vb-srv up
ip -n parcb-ws link set vb-ws up
# Shape both directions; the image flows server → workstation.
ip netns exec parcb-srv tc qdisc add dev vb-srv root tbf rate "$rate" burst 512kb latency 20ms
ip netns exec parcb-ws tc qdisc add dev vb-ws root tbf rate "$rate" burst 512kb latency 20ms

truncate -s 0 "$disk"
truncate -s "$(( raw / 1048576 * 2 + 2048 ))M" "$disk"
ip netns exec parcb-srv "$endpoint" "$work/ws" 10.78.0.1:8000 "$work/token" deploy bench/v1 bench-pc01 >"$work/task" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/task" ] && break; sleep 0.1; done
say "deploying $(( raw / 1048576 )) MiB (tar) / $(( z / 1048576 )) MiB (zstd) onto $disk"
t0=$(date +%s.%N)
PARC_AGENT_TOKEN=$(cat "$work/token") ip netns exec parcb-ws "$agent" deploy \
  --endpoint http://10.78.0.1:8000 --task "$(cat "$work/task")" --target "$disk" --report-every 2
t1=$(date +%s.%N)
wait "${pids[-1]}"
sfdisk -d "$disk" | grep -q 'label: gpt' || { say "no partition table after deploy"; exit 1; }

secs=$(echo "$t1 - $t0" | bc -l)
link=$(echo "$rate" | sed -E 's/gbit/*1000000000/; s/mbit/*1000000/' | bc -l)
link_bytes=$(echo "$link / 8" | bc -l)
eff=$(echo "$raw / $secs" | bc -l)
printf 'P2 deploy of bench/v1 over a %s link (%.0f MB/s) onto %s\n' "$rate" "$(echo "$link_bytes / 1000000" | bc -l)" "$disk_dir"
printf '  stream        : %.0f MiB zstd, %.0f MiB tar (ratio %.2f)\n' "$(echo "$z / 1048576" | bc -l)" "$(echo "$raw / 1048576" | bc -l)" "$(echo "$raw / $z" | bc -l)"
printf '  whole deploy  : %.2f s (wipe, mkfs, download+verify+untar, partition table, sync)\n' "$secs"
printf '  on the wire   : %.1f MB/s\n' "$(echo "$z / $secs / 1000000" | bc -l)"
printf '  written       : %.1f MB/s = %.2fx the link rate (target >= 2x)\n' "$(echo "$eff / 1000000" | bc -l)" "$(echo "$eff / $link_bytes" | bc -l)"
