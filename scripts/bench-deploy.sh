#!/usr/bin/env bash
# P2 — deploy throughput: parc-agent deploys the bench image natively in a network namespace
# whose link to the endpoint's namespace is shaped to 1 Gbit/s (tc tbf), onto a sparse disk
# file (through loop devices, as the agent reaches a workstation's disk). Prints the bytes of
# filesystem data written per second against the link rate (target >= 2x: compression does
# the rest), and against the baseline of the same run: the GNU pipeline a technician would
# type (curl | sha256sum | zstd -d | tar -x onto a fresh ext4, then sync) through the same link
# onto the same kind of disk.
#
#   scripts/bench-deploy.sh
#
# Environment: RATE (default 1gbit), DISK_DIR (folder of the sparse target disk, default
# /var/tmp: a disk, as a workstation's is; /dev/shm is slower than the disk on virtual
# machines whose host backs guest memory lazily). Namespaces parcb-srv / parcb-ws and the
# veth pair are removed on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
rate=${RATE:-1gbit}
disk_dir=${DISK_DIR:-/var/tmp}
say() { echo "bench-deploy: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (namespaces, tc, loop devices)"; exit 2; }
. "$repo/scripts/lib/shaped-link.sh"
"$repo/scripts/ensure-packages.sh" iproute2 fdisk e2fsprogs mount bc curl zstd tar busybox-static >&2

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
  umount "$work/mnt" 2>/dev/null || true
  [ -n "${gnu_loop:-}" ] && losetup -d "$gnu_loop" 2>/dev/null || true
  shaped_link_down parcb
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
shaped_link_up parcb 10.78.0 "$rate"

truncate -s 0 "$disk"
truncate -s "$(( raw / 1048576 * 2 + 2048 ))M" "$disk"
# Emptied first: the endpoint's own redirection may come after the wait below starts, which
# would then read the capture's task.
: >"$work/task"
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

say "baseline: curl | sha256sum | zstd -d | tar -x through the same link onto a fresh ext4"
stream=p1.tar.zst
mkdir -p "$work/plain"
"$repo/scripts/served-stream.sh" "$work/ws/images/bench/v1" "$stream" "$work/plain/$stream"
ip netns exec parcb-srv busybox httpd -f -p 10.78.0.1:8001 -h "$work/plain" &
pids+=($!)
for _ in $(seq 50); do ip netns exec parcb-ws curl -sfI "http://10.78.0.1:8001/$stream" >/dev/null && break; sleep 0.1; done
# The server and the link alone, to show whether the baseline's server held it back.
alone=$(ip netns exec parcb-ws curl -sf -o /dev/null -w '%{speed_download}' "http://10.78.0.1:8001/$stream")
truncate -s 0 "$disk"
truncate -s "$(( raw / 1048576 * 2 + 2048 ))M" "$disk"
mkdir -p "$work/mnt"
g0=$(date +%s.%N)
gnu_loop=$(losetup --find --show --direct-io=on "$disk")
mkfs.ext4 -q -F "$gnu_loop"
mount "$gnu_loop" "$work/mnt"
ip netns exec parcb-ws curl -sf "http://10.78.0.1:8001/$stream" \
  | tee >(sha256sum >"$work/gnu.sha256") | zstd -dc | tar -C "$work/mnt" --xattrs -xpf -
umount "$work/mnt"
losetup -d "$gnu_loop"; gnu_loop=
g1=$(date +%s.%N)
grep -q "sha256:$(cut -d' ' -f1 "$work/gnu.sha256")" "$manifest" || { say "baseline: the stream's digest differs"; exit 1; }
gsecs=$(echo "$g1 - $g0" | bc -l)

secs=$(echo "$t1 - $t0" | bc -l)
link=$(echo "$rate" | sed -E 's/gbit/*1000000000/; s/mbit/*1000000/' | bc -l)
link_bytes=$(echo "$link / 8" | bc -l)
eff=$(echo "$raw / $secs" | bc -l)
printf 'P2 deploy of bench/v1 over a %s link (%.0f MB/s) onto %s\n' "$rate" "$(echo "$link_bytes / 1000000" | bc -l)" "$disk_dir"
printf '  stream        : %.0f MiB zstd, %.0f MiB tar (ratio %.2f)\n' "$(echo "$z / 1048576" | bc -l)" "$(echo "$raw / 1048576" | bc -l)" "$(echo "$raw / $z" | bc -l)"
printf '  whole deploy  : %.2f s (wipe, mkfs, download+verify+untar, partition table, sync)\n' "$secs"
printf '  on the wire   : %.1f MB/s\n' "$(echo "$z / $secs / 1000000" | bc -l)"
printf '  written       : %.1f MB/s = %.2fx the link rate (target >= 2x)\n' "$(echo "$eff / 1000000" | bc -l)" "$(echo "$eff / $link_bytes" | bc -l)"
printf '  GNU pipeline  : %.2f s (mkfs, curl | sha256sum | zstd -d | tar -x, unmount) = %.1f MB/s; parc %.2fx its speed\n' "$gsecs" "$(echo "$raw / $gsecs / 1000000" | bc -l)" "$(echo "$gsecs / $secs" | bc -l)"
printf '  its server    : busybox httpd alone to curl > /dev/null: %.1f MB/s\n' "$(echo "$alone / 1000000" | bc -l)"
