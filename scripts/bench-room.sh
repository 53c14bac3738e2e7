#!/usr/bin/env bash
# A room at once: one image (>= 1 GiB of zstd) deployed to N receivers in network namespaces
# on one bridge, the server's link shaped to 1 Gbit/s (tc tbf), in one run:
#   one client alone, N clients by unicast (one HTTP stream each), N clients by multicast
#   (udpcast, one stream for the room), and N clients by multicast with 1% packet loss on
#   receiver 1's link (nftables `numgen random`: this works where the kernel lacks netem).
# Each agent writes to a sparse disk file (loop devices); each prints its path (multicast /
# unicast). Prints wall times, the ratios against one client, the bytes that crossed the
# server's link, and that every receiver verified (the agent checks every stream's sha256
# and the script checks each disk's partition table and image marker).
#
#   scripts/bench-room.sh
#
# Environment: N (default 8), RATE (default 1gbit), MC_RATE_MBIT (udp-sender's cap, default
# 900), NOISE_MIB (incompressible MiB added to the bench tree's /etc and /usr/share/doc,
# default 1100), DISK_DIR (default /var/tmp: a disk, as each workstation has; see bench-deploy.sh). Namespaces parcr-* are removed on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
n=${N:-8}
rate=${RATE:-1gbit}
mc_rate=${MC_RATE_MBIT:-900}
noise_mib=${NOISE_MIB:-1100}
disk_dir=${DISK_DIR:-/var/tmp}
say() { echo "bench-room: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (namespaces, tc, loop devices)"; exit 2; }
"$repo/scripts/ensure-packages.sh" iproute2 fdisk e2fsprogs mount bc udpcast openssl nftables >&2

# The receive buffers the boot environment sets (images/bootenv/init); restored on exit.
sysctl -qw net.core.rmem_default=4194304 net.core.rmem_max=8388608

tree=$("$repo/scripts/cache-rootfs.sh" bench)
say "building parc-agent and the bench endpoint (release)"
(cd "$repo" && cargo build --release --quiet --bin parc-agent --example image-endpoint)
agent=$repo/target/release/parc-agent
endpoint=$repo/target/release/examples/image-endpoint

work=$(mktemp -d "${TMPDIR:-/tmp}/parc-bench-room.XXXXXX")
pids=()
rmem=$(sysctl -n net.core.rmem_default) rmem_max=$(sysctl -n net.core.rmem_max)
cleanup() {
  sysctl -qw net.core.rmem_default="$rmem" net.core.rmem_max="$rmem_max" || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '/^parcr-/ {print $1}'); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] && say "kept $work" || rm -rf "$work"
  rm -f "$disk_dir"/parc-bench-room.*
}
trap cleanup EXIT

say "the image: the bench tree's /etc and /usr/share/doc + $noise_mib MiB of incompressible files"
src=$work/src
mkdir -p "$src/usr/share" "$src/noise"
cp -a "$tree/etc" "$src/etc"
cp -a "$tree/usr/share/doc" "$src/usr/share/doc"
left=$noise_mib; i=0
while [ "$left" -gt 0 ]; do
  chunk=$(( left < 64 ? left : 64 ))
  # openssl stops on SIGPIPE once head has its bytes.
  { openssl enc -aes-128-ctr -pass "pass:parc-bench-$i" -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } \
    | head -c "$(( chunk * 1048576 ))" > "$src/noise/n$i.bin"
  left=$(( left - chunk )); i=$(( i + 1 ))
done
"$endpoint" "$work/ws" 127.0.0.1:47811 "$work/token" capture room v1 >"$work/task" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/task" ] && break; sleep 0.1; done
PARC_AGENT_TOKEN=$(cat "$work/token") "$agent" capture --endpoint http://127.0.0.1:47811 \
  --task "$(cat "$work/task")" --source "1=$src" --report-every 30 2>/dev/null
wait "${pids[-1]}"
rm -rf "$src"
manifest=$work/ws/images/room/v1/manifest.toml
raw=$(grep -E '^uncompressed-size' "$manifest" | head -1 | awk '{print $3}')
z=$(grep -E '^size' "$manifest" | head -1 | awk '{print $3}')

say "namespaces: parcr-srv (10.82.0.1, $rate) and $n receivers on one bridge"
ip netns add parcr-br
ip -n parcr-br link add br0 type bridge
ip -n parcr-br link set br0 up
attach() { # namespace, bridge port, address
  ip netns add "$1"
  ip -n parcr-br link add "$2" type veth peer name eth0 netns "$1"
  ip -n parcr-br link set "$2" master br0
  ip -n parcr-br link set "$2" up
  ip -n "$1" addr add "$3/24" brd + dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
}
attach parcr-srv vr-srv 10.82.0.1
ip netns exec parcr-srv tc qdisc add dev eth0 root tbf rate "$rate" burst 512kb latency 20ms
for i in $(seq "$n"); do attach "parcr-w$i" "vr-w$i" "10.82.0.$((10 + i))"; done

disk_mib=$(( raw / 1048576 * 12 / 10 + 512 ))
tx() { ip netns exec parcr-srv cat /sys/class/net/eth0/statistics/tx_bytes; }

# run NAME COUNT [multicast]: deploys to COUNT receivers; prints "secs bytes ok paths".
run() {
  local name=$1 count=$2 mode=${3:-}
  local extra=()
  [ "$mode" = multicast ] && extra=(eth0 "$mc_rate" 30)
  : >"$work/tasks"
  ip netns exec parcr-srv "$endpoint" "$work/ws" 10.82.0.1:8000 "$work/tok" room room/v1 "$count" "${extra[@]}" \
    >"$work/tasks" 2>"$work/endpoint-$name.log" &
  local ep=$!
  pids+=("$ep")
  for _ in $(seq 100); do [ "$(wc -l <"$work/tasks")" -ge "$count" ] && break; sleep 0.1; done
  local disks=() agents=()
  for i in $(seq "$count"); do
    local d="$disk_dir/parc-bench-room.$i"
    rm -f "$d"; truncate -s "${disk_mib}M" "$d"; disks+=("$d")
  done
  local before; before=$(tx)
  local cpu0; cpu0=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
  local t0; t0=$(date +%s.%N)
  for i in $(seq "$count"); do
    PARC_AGENT_TOKEN=$(cat "$work/tok.$i") ip netns exec "parcr-w$i" "$agent" deploy \
      --endpoint http://10.82.0.1:8000 --task "$(sed -n "${i}p" "$work/tasks")" \
      --target "${disks[$((i - 1))]}" --report-every 5 2>"$work/agent-$name-$i.log" &
    agents+=($!)
  done
  local ok=1
  for a in "${agents[@]}"; do wait "$a" || ok=0; done
  local t1; t1=$(date +%s.%N)
  wait "$ep" || ok=0
  local after; after=$(tx)
  local cpu1; cpu1=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
  for d in "${disks[@]}"; do
    sfdisk -d "$d" 2>/dev/null | grep -q 'label: gpt' || ok=0
    rm -f "$d"
  done
  local paths
  paths=$(grep -ho 'by [a-z, ]*$' "$work"/agent-"$name"-*.log | sed 's/^by //; s/, then /→/' | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  local busy; busy=$(echo "($cpu1 - $cpu0) / $(getconf CLK_TCK)" | bc -l)
  echo "$(echo "$t1 - $t0" | bc -l) $(( after - before )) $busy $ok $paths"
}

say "1 client"
read -r s1 b1 c1 ok1 p1 < <(run one 1)
say "$n clients by unicast"
read -r su bu cu oku pu < <(run unicast "$n")
say "$n clients by multicast"
read -r sm bm cm okm pm < <(run multicast "$n" multicast)
say "$n clients by multicast, 1% loss on receiver 1"
# 1% of what reaches receiver 1 is dropped: nftables' random numbers (tc netem would do the
# same, where the kernel has sch_netem; nftables is in every Debian kernel).
ip netns exec parcr-w1 nft add table inet loss
ip netns exec parcr-w1 nft add chain inet loss in '{ type filter hook input priority 0; }'
ip netns exec parcr-w1 nft add rule inet loss in numgen random mod 100 '<' 1 counter drop
read -r sl bl cl okl pl < <(run lossy "$n" multicast)
dropped=$(ip netns exec parcr-w1 nft list chain inet loss in | grep -o 'packets [0-9]*' | awk '{print $2}')
ip netns exec parcr-w1 nft delete table inet loss

# udpcast's own ceiling on this machine, with no deploy behind it: the image's stream from
# udp-sender to the N receivers' udp-receiver writing to /dev/null, same link, same rate cap.
say "udpcast alone: the stream to $n receivers' /dev/null"
stream=$work/p1.tar.zst
"$repo/scripts/served-stream.sh" "$work/ws/images/room/v1" p1.tar.zst "$stream"
ip netns exec parcr-srv udp-sender --file "$stream" --nokbd --interface eth0 --portbase 9500 \
  --mcast-rdv-address 239.255.80.0 --max-bitrate "${mc_rate}m" --min-receivers "$n" 2>/dev/null &
sender=$!
t0=$(date +%s.%N)
receivers=()
for i in $(seq "$n"); do
  ip netns exec "parcr-w$i" udp-receiver --nokbd --interface eth0 --portbase 9500 \
    --mcast-rdv-address 239.255.80.0 >/dev/null 2>&1 &
  receivers+=($!)
done
for r in "${receivers[@]}"; do wait "$r"; done
wait "$sender"
sraw=$(echo "$(date +%s.%N) - $t0" | bc -l)
sbytes=$(stat -c %s "$stream")

verdict() { [ "$1" = 1 ] && echo "all verified" || echo "NOT ALL VERIFIED"; }
cores=$(nproc)
row() { # label secs bytes cpu-secs ok paths
  printf '  %-31s %6.1f s %6.2fx %6.0f MiB on the server link  CPU %3.0f%% of %d cores  %s  (%s)\n' \
    "$1" "$2" "$(echo "$2 / $s1" | bc -l)" "$(echo "$3 / 1048576" | bc -l)" \
    "$(echo "100 * $4 / ($2 * $cores)" | bc -l)" "$cores" "$(verdict "$5")" "$6"
}
printf 'Room deploy of room/v1 (%.0f MiB zstd, %.0f MiB tar) over a %s server link, %d receivers, udp-sender at %d Mbit/s\n' \
  "$(echo "$z / 1048576" | bc -l)" "$(echo "$raw / 1048576" | bc -l)" "$rate" "$n" "$mc_rate"
row "1 client" "$s1" "$b1" "$c1" "$ok1" "$p1"
row "$n clients, unicast" "$su" "$bu" "$cu" "$oku" "$pu"
row "$n clients, multicast" "$sm" "$bm" "$cm" "$okm" "$pm"
row "$n clients, multicast, 1% loss" "$sl" "$bl" "$cl" "$okl" "$pl"
printf '  (receiver 1 dropped %s packets)\n' "$dropped"
printf '  udpcast alone, %d receivers to /dev/null: %.1f s = %.0f MB/s, %.2fx one client (the multicast ceiling here)\n' \
  "$n" "$sraw" "$(echo "$sbytes / $sraw / 1000000" | bc -l)" "$(echo "$sraw / $s1" | bc -l)"
printf '  target: %d clients by multicast <= 1.5x one client: %s\n' "$n" \
  "$( [ "$(echo "$sm / $s1 <= 1.5" | bc -l)" = 1 ] && echo met || echo MISSED)"
# Every receiver and the sender share this machine's cores: a multicast run whose CPU is
# near 100% is bound by the machine, not by the link (on a room's network each workstation
# has its own CPU).
printf '  CPU work: %d clients by multicast took %.1f core-seconds, one client %.1f (%.1fx)\n' \
  "$n" "$cm" "$c1" "$(echo "$cm / $c1" | bc -l)"
[ "$ok1$oku$okm$okl" = 1111 ]
