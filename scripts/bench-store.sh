#!/usr/bin/env bash
# The chunk store, in one run:
#   P4 — incremental reimage: the bench image deployed in full onto a sparse disk through a
#        1 Gbit/s link (namespaces parcs-srv / parcs-ws, tc tbf, as bench-deploy.sh), 1% of the
#        disk's regular files then changed (every 100th in name order: one in three rewritten
#        in its middle, one deleted, one given a new 16 KiB file beside it; fixed seed), and
#        the same image deployed again onto that disk through the same link: the agent takes
#        the record of the disk's last deploy and reads only the files changed since; then
#        the same drifted disk once more with `--read-all` (every file read and cut, as with
#        no record). Prints the bytes
#        the endpoint sent against the image's bytes (target <= 3%) and the full deploy's time
#        against the reimage's (target >= 10x), where the reimage's time goes (the agent's
#        phases, timed from its progress lines) next to what GNU tar takes to read the drifted
#        tree alone, and checks both deployed trees against the bench tree (contents, types,
#        modes, owners, mtimes, device numbers).
#   P4 NTFS — the same on an NTFS image: the bench tree copied into an NTFS volume through
#        ntfs-3g (files, folders, symlinks), captured with `--disk` (partclone), deployed in
#        full, 1% of its files drifted through ntfs-3g, reimaged (the volume seeds the
#        deploy); bytes fetched, times, and the reimaged volume against the master's.
#   Chunk sizes — the same reimage (same drifted disk) for each average chunk size: image
#        bytes in the store, bytes fetched, reimage time.
#   P5 — dedup across rooms: ten rooms r01..r10 from one base (overlayfs over the bench
#        tree), each with its own software (two of ten slices of the host's
#        /usr/lib/x86_64-linux-gnu and /usr/share, neighbours sharing one) and hostname,
#        captured into one workspace. Prints the store's bytes against one room's image
#        (target <= 2x) and against ten full copies.
#   Capture — "with chunking vs without, >= 1.2x the GNU pipeline of P1": P1's pipeline
#        (`parc-agent archive`: tar, cut into chunks, each compressed alone, sha256), with
#        chunks (as captures are made) and with `--no-chunks` (one zstd stream), against P1's
#        GNU pipeline `tar -cf - | zstd -3 -T0 | tee >(sha256sum) >file` (bench-capture.sh);
#        also a whole capture through the endpoint on loopback (the agent cuts and
#        compresses, the endpoint checks and stores each chunk, both on this machine's
#        cores), and the endpoint cutting a plain zstd upload (`capture --no-chunks`). Page
#        cache warm, alternately, best of ROUNDS.
# Ends with a summary, MET or MISSED per target; exits non-zero when a reimaged tree is wrong.
#
#   scripts/bench-store.sh
#
# Environment: RATE (default 1gbit), DISK_DIR (folder of the sparse disks, default /var/tmp,
# see bench-deploy.sh), CHUNK_SIZES (average chunk sizes in KiB to compare, default
# "16 32 64"; each captured with `--no-chunks` and PARC_CHUNK_AVG_KIB in the endpoint's
# environment: the agent cuts at the default size only), DRIFT_SEED (default 1), ROUNDS
# (capture rounds, default 2), SOFTWARE_AT (P5: `per-room`, each room's software under
# /opt/room-N, default; or `shared`, under /opt/software in every room, as an installed
# program keeps its path from room to room), PARTS (default "p4 p4ntfs sizes p5 capture"), KEEP=1
# (keep the work folder). Namespaces parcs-*, loop devices, mounts and temporary folders are
# removed on exit. About 15 to 25 minutes on 2 cores.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PARC_CACHE=${PARC_CACHE:-$repo/.cache}
rate=${RATE:-1gbit}
disk_dir=${DISK_DIR:-/var/tmp}
sizes=${CHUNK_SIZES:-16 32 64}
seed=${DRIFT_SEED:-1}
rounds=${ROUNDS:-2}
software_at=${SOFTWARE_AT:-per-room}
parts=${PARTS:-p4 p4ntfs sizes p5 capture}
say() { echo "bench-store: $*" >&2; }
has_part() { [[ " $parts " == *" $1 "* ]]; }

[ "$(id -u)" = 0 ] || { say "needs root (namespaces, tc, loop devices, mounts)"; exit 2; }
case "$software_at" in per-room | shared) ;; *) say "SOFTWARE_AT: per-room or shared"; exit 2 ;; esac
. "$repo/scripts/lib/shaped-link.sh"
"$repo/scripts/ensure-packages.sh" iproute2 fdisk e2fsprogs mount bc zstd tar openssl diffutils time >&2

tree=$("$repo/scripts/cache-rootfs.sh" bench)
say "building parc-agent and the bench endpoint (release)"
(cd "$repo" && cargo build --release --quiet --bin parc-agent --example image-endpoint)
agent=$repo/target/release/parc-agent
endpoint=$repo/target/release/examples/image-endpoint

work=$(mktemp -d "${TMPDIR:-/tmp}/parc-bench-store.XXXXXX")
disk=$(mktemp "$disk_dir/parc-bench-store.XXXXXX")
drifted=$(mktemp "$disk_dir/parc-bench-store.XXXXXX")
pids=()
loops=()
mounts=()
extra_files=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  shaped_link_down parcs
  for (( i = ${#mounts[@]} - 1; i >= 0; i-- )); do umount "${mounts[$i]}" 2>/dev/null || true; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && say "kept $work" || rm -rf "$work"
  rm -f "$disk" "$drifted" "${extra_files[@]}"
}
trap cleanup EXIT
mib() { echo "$1 / 1048576" | bc -l; }
now() { echo "$EPOCHREALTIME"; }
# Prefixes each line with the time it was read (the agent's progress lines carry none).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
# met VALUE OP TARGET: MET or MISSED.
met() { [ "$(echo "$1 $2 $3" | bc -l)" = 1 ] && echo MET || echo MISSED; }
stream_size() { awk '/^size/ {print $3; exit}' "$1"; }
raw_size() { awk '/^uncompressed-size/ {print $3; exit}' "$1"; }

# capture WS ROOM VERSION SRC [AGENT ARGS...]: one capture on loopback; $chunk_kib, when set,
# is the endpoint's PARC_CHUNK_AVG_KIB. Sets cap_secs (agent start → image committed) and
# cap_cpu (CPU seconds of the agent and of the endpoint, user + system).
capture() {
  local ws=$1 room=$2 version=$3 src=$4; shift 4
  # `disk:FILE`: a disk whose partition 1 is NTFS, captured whole (`--disk`).
  local kind=capture from=(--source "1=$src")
  case $src in disk:*) kind=capture-ntfs from=(--disk "${src#disk:}") ;; esac
  : >"$work/task"
  env ${chunk_kib:+PARC_CHUNK_AVG_KIB=$chunk_kib} /usr/bin/time -f '%U %S' -o "$work/cpu-endpoint" \
    "$endpoint" "$ws" 127.0.0.1:47821 "$work/token" \
    "$kind" "$room" "$version" >"$work/task" 2>"$work/capture-endpoint.log" &
  local ep=$!
  pids+=("$ep")
  for _ in $(seq 100); do [ -s "$work/task" ] && break; sleep 0.05; done
  local t0; t0=$(now)
  PARC_AGENT_TOKEN=$(cat "$work/token") /usr/bin/time -f '%U %S' -o "$work/cpu-agent" \
    "$agent" capture --endpoint http://127.0.0.1:47821 \
    --task "$(cat "$work/task")" "${from[@]}" --report-every 30 "$@" 2>"$work/capture-agent.log" \
    || { cat "$work/capture-agent.log" "$work/capture-endpoint.log" >&2; return 1; }
  wait "$ep" || { cat "$work/capture-endpoint.log" >&2; return 1; }
  cap_secs=$(echo "$(now) - $t0" | bc -l)
  cap_cpu="$(awk '{print $1 + $2}' "$work/cpu-agent") $(awk '{print $1 + $2}' "$work/cpu-endpoint")"
}

# The average chunk size (KiB) an image's stream was cut at, from its index's header.
index_avg() { { zstd -dc "$1/p1.tar.zst.idx.zst" || true; } | awk 'NR == 1 {print $5 / 1024}'; }

say "namespaces: parcs-srv (10.83.0.1) <-> parcs-ws (10.83.0.2), $rate"
shaped_link_up parcs 10.83.0 "$rate"

# deploy WS ID DISK NAME [AGENT ARGS]: deploys image ID onto DISK through the shaped link. Sets dep_secs
# (the agent's wall time), dep_cpu (its CPU seconds, user + system), dep_sent (the
# endpoint's count of body bytes sent to the task) and dep_line (the agent's "found on the disk" line, empty for a full deploy). The agent's
# stderr, each line timed, is in $work/agent-NAME.log.
deploy() {
  local ws=$1 id=$2 target=$3 name=$4
  local extra=("${@:5}")
  : >"$work/task"
  ip netns exec parcs-srv "$endpoint" "$ws" 10.83.0.1:8000 "$work/token" deploy "$id" bench-pc01 \
    >"$work/task" 2>"$work/endpoint-$name.log" &
  local ep=$!
  pids+=("$ep")
  for _ in $(seq 100); do [ -s "$work/task" ] && break; sleep 0.05; done
  dep_t0=$(now)
  { PARC_AGENT_TOKEN=$(cat "$work/token") ip netns exec parcs-ws \
      /usr/bin/time -f '%U %S' -o "$work/cpu-$name" "$agent" deploy \
      --endpoint http://10.83.0.1:8000 --task "$(cat "$work/task")" --target "$target" \
      --report-every 0.2 "${extra[@]}" 2>&1 >"$work/agent-$name.out" | stamp >"$work/agent-$name.log"; } \
    || { say "deploy $name failed"; cut -d' ' -f2- "$work/agent-$name.log" | tail -20 >&2; return 1; }
  dep_t1=$(now)
  wait "$ep" || { cat "$work/endpoint-$name.log" >&2; return 1; }
  dep_secs=$(echo "$dep_t1 - $dep_t0" | bc -l)
  dep_cpu=$(awk '{print $1 + $2}' "$work/cpu-$name")
  dep_sent=$(grep -o 'sent [0-9]* bytes' "$work/endpoint-$name.log" | awk '{print $2}')
  dep_line=$(grep -o 'p1\.[a-z]*\.zst: [0-9]* MiB found on the disk.*' "$work/agent-$name.log" || true)
}

# phases NAME: where the deploy's time went, from the agent's timed progress lines (one
# every 0.2 s, so each figure is within 0.2 s): "phase A s; phase B s; …".
phases() {
  awk -v t0="$dep_t0" -v t1="$dep_t1" '
    / parc-agent: .*: [0-9]+ \/ [0-9]+ MiB, / {
      p = $0; sub(/^[0-9.]+ parc-agent: /, "", p); sub(/: [0-9]+ \/ [0-9]+ MiB, .*$/, "", p)
      if (p != last) { n++; name[n] = p; start[n] = $1; last = p }
    }
    END {
      printf "start → first report %.1f s", start[1] - t0
      for (i = 1; i <= n; i++) printf "; %s %.1f s", name[i], (i < n ? start[i + 1] : t1) - start[i]
      print ""
    }' "$work/agent-$1.log"
}

# part1 DISK: attaches partition 1 of DISK (offset and size from `sfdisk -J`); prints the
# loop device. Extra losetup arguments follow.
part1() {
  local d=$1; shift
  local j; j=$(sfdisk -J "$d" | tr -d ' \n')
  # The first of each key: the table's sector size, then partition 1's.
  first() { awk -v k="\"$1\":" '{ i = index($0, k); s = substr($0, i + length(k)); sub(/[^0-9].*$/, "", s); print s }' <<<"$j"; }
  local start size sector
  start=$(first start) size=$(first size) sector=$(first sectorsize)
  losetup --find --show --offset "$(( start * ${sector:-512} ))" --sizelimit "$(( size * ${sector:-512} ))" "$@" "$d"
}

# rnd KEY N: N pseudo-random bytes, the same for the same DRIFT_SEED and KEY.
rnd() {
  { openssl enc -aes-128-ctr -pass "pass:parc-drift-$seed-$1" -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } \
    | head -c "$2"
}

# drift DISK: changes 1% of the regular files of DISK's partition 1, spread over the tree.
drift() {
  local lo; lo=$(part1 "$1" --direct-io=on); loops+=("$lo")
  mkdir -p "$work/mnt"
  mount ${fstype:+-t "$fstype"} "$lo" "$work/mnt"; mounts+=("$work/mnt")
  (cd "$work/mnt" && find . -xdev -type f ! -path './etc/parc/*' ! -path './lost+found/*' -printf '%P\n' \
     | LC_ALL=C sort) >"$work/files"
  local k=0 f size n rewritten=0 deleted=0 added=0 bytes=0
  while IFS= read -r f; do
    f=$work/mnt/$f
    case $(( k % 3 )) in
      0) size=$(stat -c %s "$f"); n=$(( size < 4096 ? size : 4096 )); [ "$n" -gt 0 ] || n=16
         rnd "$k" "$n" | dd of="$f" bs="$n" count=1 iflag=fullblock oflag=seek_bytes \
           seek=$(( size > n ? (size - n) / 2 : 0 )) conv=notrunc status=none
         rewritten=$(( rewritten + 1 )); bytes=$(( bytes + n )) ;;
      1) rm -f "$f"; deleted=$(( deleted + 1 )) ;;
      2) rnd "$k" 16384 >"$f.drift"; added=$(( added + 1 )); bytes=$(( bytes + 16384 )) ;;
    esac
    k=$(( k + 1 ))
  done < <(awk 'NR % 100 == 1' "$work/files")
  umount "$work/mnt"; unset 'mounts[-1]'
  losetup -d "$lo"; unset 'loops[-1]'
  drift_said="$k of $(wc -l <"$work/files") files: $rewritten rewritten in their middle, $deleted deleted, $added new 16 KiB files beside ($(( bytes >> 10 )) KiB written)"
}

# listing DIR: one line per entry: path, type, mode, owner, group, size (not of folders),
# mtime (seconds), symlink target; without what a deploy writes on purpose. Then the device
# numbers of device nodes (diff -r does not compare them).
listing() {
  (cd "$1" && find . -xdev -printf '%P\t%y\t%m\t%U\t%G\t%s\t%T@\t%l\n') \
    | awk -F'\t' -v OFS='\t' '
        $1 ~ /^(lost\+found|etc\/parc|etc\/hostname|etc\/hosts)(\/|$)/ { next }
        { sub(/\..*$/, "", $7); if ($2 == "d") $6 = "-"; if ($1 == "" || $1 == "etc") $7 = "-"; print }' \
    | LC_ALL=C sort
  (cd "$1" && find . -xdev \( -type c -o -type b \) -exec stat -c '%n %F %t:%T' {} + | LC_ALL=C sort)
}

# verify DISK NAME: the tree on DISK's partition 1 against the bench tree; prints the
# differences and fails when there are any.
verify() {
  local lo; lo=$(part1 "$1" --read-only); loops+=("$lo")
  mkdir -p "$work/mnt"
  mount -o ro "$lo" "$work/mnt"; mounts+=("$work/mnt")
  local m=$work/mnt out=$work/verify-$2.diff
  printf '%s\n' "Only in $m: lost+found" "Only in $m/etc: parc" "Only in $m/etc: hosts" \
    "Files $tree/etc/hostname and $m/etc/hostname differ" "Files $tree/etc/hosts and $m/etc/hosts differ" \
    >"$work/expected"
  # diff -r calls two device nodes different whatever their numbers: the listing has them.
  { diff -rq --no-dereference "$tree" "$m" || true; } | { grep -vxF -f "$work/expected" || true; } \
    | { grep -vE ' is a (character|block) special file while file .* is a (character|block) special file$' || true; } >"$out"
  diff <(listing "$tree") <(listing "$m") >>"$out" || true
  umount "$work/mnt"; unset 'mounts[-1]'
  losetup -d "$lo"; unset 'loops[-1]'
  if [ -s "$out" ]; then
    say "$2: the deployed tree differs from the bench tree ($(wc -l <"$out") lines):"
    head -20 "$out" >&2
    return 1
  fi
}

# verify_ntfs MASTER DISK NAME: partition 1 of DISK against MASTER's, both through ntfs-3g
# (contents, types, sizes, mtimes, symlink targets), and as partclone reads them (every used
# cluster, the stream a capture would make): `nstream` says whether both streams match.
verify_ntfs() {
  local a b; a=$(part1 "$1" --read-only); loops+=("$a"); b=$(part1 "$2" --read-only); loops+=("$b")
  local da db
  da=$(partclone.ntfs --clone --quiet --source "$a" --output - 2>/dev/null | sha256sum | cut -d' ' -f1)
  db=$(partclone.ntfs --clone --quiet --source "$b" --output - 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ "$da" = "$db" ]; then nstream=identical; else nstream=DIFFERENT; fi
  mkdir -p "$work/ma" "$work/mb"
  ntfs-3g -o ro "$a" "$work/ma"; mounts+=("$work/ma")
  ntfs-3g -o ro "$b" "$work/mb"; mounts+=("$work/mb")
  local out=$work/verify-$3.diff
  { diff -rq --no-dereference "$work/ma" "$work/mb" || true; } >"$out"
  diff <(listing "$work/ma") <(listing "$work/mb") >>"$out" || true
  umount "$work/mb"; unset 'mounts[-1]'; umount "$work/ma"; unset 'mounts[-1]'
  losetup -d "$b"; unset 'loops[-1]'; losetup -d "$a"; unset 'loops[-1]'
  if [ -s "$out" ]; then
    say "$3: the deployed NTFS volume differs from the master's ($(wc -l <"$out") lines):"
    head -20 "$out" >&2
    return 1
  fi
  if [ "$nstream" != identical ]; then
    say "$3: partclone reads the deployed NTFS volume otherwise than the master's ($db, $da)"
    return 1
  fi
}

failed=0
declare -A img fetched tinc
sizes_lines=()

if has_part p4 || has_part sizes; then
  say "capturing the bench tree into bench/v1 (loopback, not measured)"
  capture "$work/ws" bench v1 "$tree"
  manifest=$work/ws/images/bench/v1/manifest.toml
  raw=$(raw_size "$manifest")
  z=$(stream_size "$manifest")
  default_kib=$(index_avg "$work/ws/images/bench/v1")
  truncate -s "$(( raw / 1048576 * 2 + 2048 ))M" "$disk"
  say "P4: full deploy of $(( raw >> 20 )) MiB (tar) / $(( z >> 20 )) MiB (stored) onto a blank disk"
  deploy "$work/ws" bench/v1 "$disk" full
  t_full=$dep_secs cpu_full=$dep_cpu sent_full=$dep_sent phases_full=$(phases full)
  [ -z "$dep_line" ] || { say "the deploy onto a blank disk was incremental: $dep_line"; exit 1; }
  say "P4: full deploy $t_full s, $sent_full bytes sent; checking the tree"
  verify "$disk" full && verified_full=identical || { verified_full=DIFFERENT; failed=1; }
  say "P4: drifting 1% of the disk's regular files (seed $seed)"
  drift "$disk"
  say "P4: $drift_said"
  cp --sparse=always "$disk" "$drifted"
  # What reading the disk's tree costs alone: GNU tar through a loop device as the agent
  # attaches it (direct I/O), on a fresh mount. A reimage that reads every file is no faster.
  lo=$(part1 "$disk" --direct-io=on); loops+=("$lo")
  mount -o ro "$lo" "$work/mnt"; mounts+=("$work/mnt")
  r0=$(now); tar -cf - -C "$work/mnt" . | cat >/dev/null; t_read=$(echo "$(now) - $r0" | bc -l)
  umount "$work/mnt"; unset 'mounts[-1]'
  losetup -d "$lo"; unset 'loops[-1]'
  say "P4: reimage of the drifted disk"
  deploy "$work/ws" bench/v1 "$disk" inc
  t_inc=$dep_secs cpu_inc=$dep_cpu sent_inc=$dep_sent line_inc=$dep_line phases_inc=$(phases inc)
  [ -n "$line_inc" ] || { say "the reimage was not incremental"; cut -d' ' -f2- "$work/agent-inc.log" | tail >&2; exit 1; }
  verify "$disk" inc && verified_inc=identical || { verified_inc=DIFFERENT; failed=1; }
  pct_inc=$(echo "100 * $sent_inc / $z" | bc -l)
  say "P4: reimage of the same drifted disk from the record, every path looked up (lstat walk)"
  cp --sparse=always "$drifted" "$disk"
  PARC_RECORD_WALK=1 deploy "$work/ws" bench/v1 "$disk" one
  t_one=$dep_secs phases_one=$(phases one)
  verify "$disk" one || failed=1
  say "P4: reimage of the same drifted disk reading every file (--read-all)"
  cp --sparse=always "$drifted" "$disk"
  deploy "$work/ws" bench/v1 "$disk" all --read-all
  t_all=$dep_secs cpu_all=$dep_cpu sent_all=$dep_sent line_all=$dep_line phases_all=$(phases all)
  [ -n "$line_all" ] || { say "the --read-all reimage was not incremental"; exit 1; }
  verify "$disk" all && verified_all=identical || { verified_all=DIFFERENT; failed=1; }
  pct_all=$(echo "100 * $sent_all / $z" | bc -l)
  img[$default_kib]=$z fetched[$default_kib]=$sent_inc tinc[$default_kib]=$t_inc
fi

if has_part p4ntfs; then
  "$repo/scripts/ensure-packages.sh" ntfs-3g partclone cpio >&2
  master=$(mktemp "$disk_dir/parc-bench-store.XXXXXX"); extra_files+=("$master")
  vol_mib=$(( $(du -sm "$tree" | cut -f1) * 3 / 2 + 512 ))
  truncate -s "$(( vol_mib + 2 ))M" "$master"
  printf 'label: gpt\nstart=2048, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' | sfdisk -q "$master"
  lo=$(part1 "$master"); loops+=("$lo")
  mkntfs -Q -q -L bench "$lo" 2>/dev/null
  mkdir -p "$work/mnt"
  ntfs-3g "$lo" "$work/mnt"; mounts+=("$work/mnt")
  say "P4 NTFS: filling a $vol_mib MiB NTFS volume with the bench tree through ntfs-3g (not measured)"
  # Sockets, devices and fifos have no place on NTFS; owners neither.
  (cd "$tree" && find . -xdev \( -type f -o -type d -o -type l \) -print0 \
    | cpio -0 -p -d -m --quiet "$work/mnt" 2>/dev/null) || true
  umount "$work/mnt"; unset 'mounts[-1]'
  losetup -d "$lo"; unset 'loops[-1]'
  say "P4 NTFS: capturing it into benchn/v1 (loopback, not measured)"
  capture "$work/ws-ntfs" benchn v1 "disk:$master"
  nmanifest=$work/ws-ntfs/images/benchn/v1/manifest.toml
  nz=$(stream_size "$nmanifest")
  truncate -s 0 "$disk"; truncate -s "$(stat -c %s "$master")" "$disk"
  say "P4 NTFS: full deploy of $(( nz >> 20 )) MiB (stored) onto a blank disk"
  deploy "$work/ws-ntfs" benchn/v1 "$disk" ntfs-full
  nt_full=$dep_secs nsent_full=$dep_sent nphases_full=$(phases ntfs-full)
  [ -z "$dep_line" ] || { say "the NTFS deploy onto a blank disk was incremental: $dep_line"; exit 1; }
  say "P4 NTFS: drifting 1% of the volume's regular files (seed $seed)"
  fstype=ntfs-3g drift "$disk"
  ndrift_said=$drift_said
  say "P4 NTFS: $ndrift_said"
  say "P4 NTFS: reimage of the drifted disk"
  deploy "$work/ws-ntfs" benchn/v1 "$disk" ntfs-inc
  nt_inc=$dep_secs nsent_inc=$dep_sent nline_inc=$dep_line nphases_inc=$(phases ntfs-inc)
  [ -n "$nline_inc" ] || { say "the NTFS reimage was not incremental"; cut -d' ' -f2- "$work/agent-ntfs-inc.log" | tail >&2; exit 1; }
  verify_ntfs "$master" "$disk" ntfs-inc && nverified=identical || { nverified=DIFFERENT; failed=1; }
  npct_inc=$(echo "100 * $nsent_inc / $nz" | bc -l)
fi

if has_part sizes; then
  for kib in $sizes; do
    say "chunk sizes: $kib KiB: capture (the endpoint cuts), reimage of the same drifted disk"
    rm -rf "$work/ws-$kib"
    chunk_kib=$kib capture "$work/ws-$kib" bench v1 "$tree" --no-chunks
    got=$(index_avg "$work/ws-$kib/images/bench/v1")
    [ "$got" = "$kib" ] || { say "asked for $kib KiB chunks, the index says $got KiB"; exit 1; }
    z_k=$(stream_size "$work/ws-$kib/images/bench/v1/manifest.toml")
    cp --sparse=always "$drifted" "$disk"
    deploy "$work/ws-$kib" bench/v1 "$disk" "inc-$kib"
    [ -n "$dep_line" ] || { say "the $kib KiB reimage was not incremental"; exit 1; }
    verify "$disk" "inc-$kib" || failed=1
    # The endpoint-cut image at the agent's size must be the agent-cut one, byte for byte.
    if [ "$kib" = "${default_kib:-}" ] && [ "$z_k" != "$z" ]; then
      say "at $kib KiB the endpoint's cut stores $z_k bytes, the agent's $z"
    fi
    img[$kib]=$z_k fetched[$kib]=$dep_sent tinc[$kib]=$dep_secs
    sizes_lines+=("$(printf '  %3s KiB: image %7.1f MiB, reimage fetched %6.1f MiB = %4.1f%%, T_inc %5.2f s  (%s)' \
      "$kib" "$(mib "$z_k")" "$(mib "$dep_sent")" "$(echo "100 * $dep_sent / $z_k" | bc -l)" "$dep_secs" \
      "$(sed -E 's/^p1\.tar\.zst: //' <<<"$dep_line")")")
    rm -rf "$work/ws-$kib"
  done
fi
rm -f "$drifted"

if has_part p5; then
  say "P5: a software pool from the host's /usr/lib/x86_64-linux-gnu and /usr/share, 10 slices"
  mkdir -p "$work/pool"
  # Ten slices of about the same bytes (a hard link's counted once), in name order: a slice
  # is whole packages' files.
  (cd / && find usr/lib/x86_64-linux-gnu usr/share -xdev -type f -printf '%i\t%s\t%p\n' 2>/dev/null \
     | LC_ALL=C sort -t$'\t' -k3) \
    | awk -F'\t' -v dir="$work/pool" '
        { size[NR] = ($1 in seen) ? 0 : $2; seen[$1]; path[NR] = $3; total += size[NR] }
        END { for (i = 1; i <= NR; i++) { print path[i] > (dir "/slice." int(cum * 10 / total)); cum += size[i] } }'
  for k in $(seq 0 9); do
    mkdir -p "$work/pool/$k"
    tar -cf - -C / --files-from "$work/pool/slice.$k" 2>/dev/null | tar -xpf - -C "$work/pool/$k"
  done
  pool_bytes=$(du -sbc "$work"/pool/[0-9] | tail -1 | cut -f1)
  for i in $(seq 1 10); do
    r=$(printf 'r%02d' "$i"); d=$work/rooms/$r
    case "$software_at" in per-room) at=opt/room-$i ;; shared) at=opt/software ;; esac
    mkdir -p "$d/upper/$at" "$d/upper/etc" "$d/work" "$d/merged"
    # Hard links to the pool: no copy, and each file appears once in a room.
    cp -al "$work/pool/$(( i - 1 ))/." "$d/upper/$at/"
    cp -al "$work/pool/$(( i % 10 ))/." "$d/upper/$at/"
    echo "room-$r" >"$d/upper/etc/hostname"
    mount -t overlay overlay -o "lowerdir=$tree,upperdir=$d/upper,workdir=$d/work" "$d/merged"
    mounts+=("$d/merged")
    say "P5: capturing room $r ($(du -sm "$d/upper" | cut -f1) MiB of its own software)"
    capture "$work/ws-rooms" "$r" v1 "$d/merged"
    umount "$d/merged"; unset 'mounts[-1]'
  done
  rooms_store=$(du -sb "$work/ws-rooms/images" | cut -f1)
  room1=$(stream_size "$work/ws-rooms/images/r01/v1/manifest.toml")
  naive=0
  for i in $(seq 1 10); do
    naive=$(( naive + $(stream_size "$work/ws-rooms/images/$(printf 'r%02d' "$i")/v1/manifest.toml") ))
  done
  rm -rf "$work/rooms" "$work/pool" "$work/ws-rooms"
fi

if has_part capture; then
  say "capture: warming the page cache with the tree ($(du -sh "$tree" | cut -f1))"
  tar -cf - -C "$tree" . >/dev/null
  TIMEFORMAT='%R %U %S'
  # best NAME WALL CPU...: keeps the fastest round of NAME, with its CPU seconds.
  declare -A best cpu
  best() {
    if [ -z "${best[$1]:-}" ] || [ "$(echo "$2 < ${best[$1]}" | bc -l)" = 1 ]; then best[$1]=$2; cpu[$1]=$3; fi
  }
  # Each capture into a workspace of its own, all removed after the last round: ext4 makes
  # a new inode slowly while tens of thousands were freed in the last minutes (its
  # allocator skips recently deleted inodes), which a workspace removed just before would
  # charge to the next capture's 67 000 chunk files.
  # archive NAME [ARGS]: P1's pipeline (`parc-agent archive`: tar, cut, zstd, sha256) into a
  # file; keeps the best round of NAME, sets the stored and raw bytes of NAME and arch_secs.
  declare -A stored_of raw_of
  archive() {
    local name=$1; shift
    { time "$agent" archive --source-dir "$tree" --output "$work/$name.out" "$@" >"$work/$name.json"; } 2>"$work/t.$name"
    read -r w u s <"$work/t.$name"
    best "$name" "$w" "$(echo "$u + $s" | bc -l | xargs printf '%.1f s')"
    stored_of[$name]=$(stat -c %s "$work/$name.out")
    raw_of[$name]=$(sed -E 's/.*"uncompressed_size":([0-9]+).*/\1/' "$work/$name.json")
    rm -f "$work/$name.out"
    arch_secs=$(printf '%.2f' "$w")
  }
  for i in $(seq "$rounds"); do
    archive chunks; a=$arch_secs
    archive nochunks --no-chunks; b=$arch_secs
    capture "$work/ws-cap-$i" bench v1 "$tree"
    best parc "$cap_secs" "$(awk '{printf "%.1f s (agent %.1f + endpoint %.1f)", $1 + $2, $1, $2}' <<<"$cap_cpu")"
    parc_z=$(stream_size "$work/ws-cap-$i/images/bench/v1/manifest.toml")
    parc_raw=$(raw_size "$work/ws-cap-$i/images/bench/v1/manifest.toml")
    p=$cap_secs
    capture "$work/ws-plain-$i" bench v1 "$tree" --no-chunks
    best plain "$cap_secs" "$(awk '{printf "%.1f s (agent %.1f + endpoint %.1f)", $1 + $2, $1, $2}' <<<"$cap_cpu")"
    q=$cap_secs
    { time { tar -cf - -C "$tree" . | zstd -3 -T0 -q | tee >(sha256sum >"$work/gnu.sum") >"$work/gnu.tar.zst"; } ; } 2>"$work/t.gnu"
    read -r g gu gs <"$work/t.gnu"
    best gnu "$g" "$(echo "$gu + $gs" | bc -l | xargs printf '%.1f s')"
    say "round $i: archive with chunks $a s, without $b s; loopback capture $(printf '%.2f' "$p") s, --no-chunks $(printf '%.2f' "$q") s; GNU pipeline $g s"
  done
  rm -rf "$work"/ws-cap-* "$work"/ws-plain-*
  gnu_raw=$(zstd -dc "$work/gnu.tar.zst" | wc -c)
  gnu_z=$(stat -c %s "$work/gnu.tar.zst")
  rm -f "$work/gnu.tar.zst"
  # Each side's throughput over its own tar stream (parc's sorts names, GNU's does not).
  vs_gnu() { echo "($1 / $2) / ($gnu_raw / ${best[gnu]})" | bc -l; }
  speedup=$(vs_gnu "${raw_of[chunks]}" "${best[chunks]}")
  speedup_plain=$(vs_gnu "${raw_of[nochunks]}" "${best[nochunks]}")
  speedup_loop=$(vs_gnu "$parc_raw" "${best[parc]}")
fi

echo
echo "bench-store: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), disks in $disk_dir, link $rate"
if has_part p4; then
  printf 'P4 incremental reimage of bench/v1 (%.0f MiB tar, %.1f MiB stored, %s KiB chunks)\n' "$(mib "$raw")" "$(mib "$z")" "$default_kib"
  printf '  full deploy   : %6.2f s (agent CPU %5.1f s), %6.1f MiB sent  [%s]\n' "$t_full" "$cpu_full" "$(mib "$sent_full")" "$phases_full"
  printf '  drift         : %s\n' "$drift_said"
  printf '  reimage       : %6.2f s (agent CPU %5.1f s), %6.1f MiB sent  [%s]\n' "$t_inc" "$cpu_inc" "$(mib "$sent_inc")" "$phases_inc"
  printf '  lstat walk    : %6.2f s  [%s]  (PARC_RECORD_WALK=1: every path looked up by 8 threads, the named baseline of the inode tables read above)\n' "$t_one" "$phases_one"
  printf '  --read-all    : %6.2f s (agent CPU %5.1f s), %6.1f MiB sent = %.2f%%  [%s]\n' "$t_all" "$cpu_all" "$(mib "$sent_all")" "$pct_all" "$phases_all"
  printf '  disk read     : %6.2f s = %.0f MB/s: GNU tar reading the drifted tree alone, fresh mount, loop device with direct I/O as the agent attaches it\n' "$t_read" "$(echo "$raw / $t_read / 1000000" | bc -l)"
  printf '  agent         : %s\n' "$line_inc"
  printf '  fetched       : %.2f%% of the image (target <= 3%%): %s\n' "$pct_inc" "$(met "$pct_inc" '<=' 3)"
  printf '  T_full/T_inc  : %.2fx (target >= 10x): %s\n' "$(echo "$t_full / $t_inc" | bc -l)" "$(met "$t_full / $t_inc" '>=' 10)"
  printf '  trees         : full deploy %s, reimage %s, --read-all %s to the bench tree (contents, types, modes, owners, mtimes, device numbers)\n' "$verified_full" "$verified_inc" "$verified_all"
fi
if has_part p4ntfs; then
  printf 'P4 NTFS: the bench tree in an NTFS volume, captured with partclone (%.1f MiB stored)\n' "$(mib "$nz")"
  printf '  full deploy   : %6.2f s, %6.1f MiB sent  [%s]\n' "$nt_full" "$(mib "$nsent_full")" "$nphases_full"
  printf '  drift         : %s\n' "$ndrift_said"
  printf '  reimage       : %6.2f s, %6.1f MiB sent  [%s]\n' "$nt_inc" "$(mib "$nsent_inc")" "$nphases_inc"
  printf '  agent         : %s\n' "$nline_inc"
  printf '  volume        : reimage %s to the master'"'"'s (contents, types, sizes, mtimes, through ntfs-3g; partclone streams %s)\n' "$nverified" "$nstream"
fi
if has_part sizes; then
  echo "Chunk sizes: the same drifted disk reimaged from the bench tree captured at each average"
  printf '%s\n' "${sizes_lines[@]}"
fi
if has_part p5; then
  printf 'P5 ten rooms from one base (software %s: 2 of 10 slices of a %.0f MiB pool each, neighbours share one)\n' \
    "$( [ "$software_at" = per-room ] && echo 'under /opt/room-N' || echo 'under /opt/software')" "$(mib "$pool_bytes")"
  printf '  one image (r01) : %7.1f MiB\n' "$(mib "$room1")"
  printf '  store (images/) : %7.1f MiB = %.2fx one image (target <= 2x): %s\n' "$(mib "$rooms_store")" \
    "$(echo "$rooms_store / $room1" | bc -l)" "$(met "$rooms_store / $room1" '<=' 2)"
  printf '  ten full copies : %7.1f MiB = %.2fx one image; the store holds %.0f%% of it\n' "$(mib "$naive")" \
    "$(echo "$naive / $room1" | bc -l)" "$(echo "100 * $rooms_store / $naive" | bc -l)"
fi
if has_part capture; then
  printf 'Capture of the bench tree (%.0f MiB as tar), best of %s, page cache warm\n' "$(mib "$parc_raw")" "$rounds"
  line() { printf '  %-40s: %6.2f s  %6.1f MiB/s  ratio %.3f  CPU %s\n' "$1" "$2" "$(echo "$(mib "$3") / $2" | bc -l)" "$(echo "$3 / $4" | bc -l)" "$5"; }
  line "P1 pipeline, chunks (parc-agent archive)" "${best[chunks]}" "${raw_of[chunks]}" "${stored_of[chunks]}" "${cpu[chunks]}"
  line "P1 pipeline, --no-chunks" "${best[nochunks]}" "${raw_of[nochunks]}" "${stored_of[nochunks]}" "${cpu[nochunks]}"
  line "tar | zstd -3 -T0 | tee sha256sum" "${best[gnu]}" "$gnu_raw" "$gnu_z" "${cpu[gnu]}"
  line "loopback capture into the store" "${best[parc]}" "$parc_raw" "$parc_z" "${cpu[parc]}"
  line "loopback, --no-chunks (endpoint cuts)" "${best[plain]}" "$parc_raw" "$parc_z" "${cpu[plain]}"
  printf '  with chunks vs GNU   : %.2fx (target >= 1.2x): %s; without chunks %.2fx\n' "$speedup" "$(met "$speedup" '>=' 1.2)" "$speedup_plain"
  printf '  loopback vs GNU      : %.2fx: the agent and the endpoint (which decompresses and hashes every chunk again to check it, and writes one file per chunk) on the same %s cores\n' "$speedup_loop" "$(nproc)"
fi
echo "Summary"
if has_part p4; then
  printf '  P4 reimage fetched            %6.2f%%   target <= 3%%    %s\n' "$pct_inc" "$(met "$pct_inc" '<=' 3)"
  printf '  P4 T_full / T_inc             %6.2fx   target >= 10x   %s\n' "$(echo "$t_full / $t_inc" | bc -l)" "$(met "$t_full / $t_inc" '>=' 10)"
  printf '  P4 T_full / T_inc --read-all  %6.2fx   (every file read: the record not taken)\n' "$(echo "$t_full / $t_all" | bc -l)"
  printf '  P4 trees (full, reimage, all) %s, %s, %s\n' "$verified_full" "$verified_inc" "$verified_all"
fi
if has_part p4ntfs; then
  printf '  P4 NTFS reimage fetched       %6.2f%%   target <= 3%%    %s\n' "$npct_inc" "$(met "$npct_inc" '<=' 3)"
  printf '  P4 NTFS T_full / T_inc        %6.2fx   target >= 10x   %s\n' "$(echo "$nt_full / $nt_inc" | bc -l)" "$(met "$nt_full / $nt_inc" '>=' 10)"
  printf '  P4 NTFS volume (reimage)      %s\n' "$nverified"
fi
if has_part sizes; then
  for kib in $sizes; do
    printf '  chunks %3s KiB                image %.1f MiB, fetched %.1f%%, T_inc %.2f s\n' "$kib" "$(mib "${img[$kib]}")" \
      "$(echo "100 * ${fetched[$kib]} / ${img[$kib]}" | bc -l)" "${tinc[$kib]}"
  done
fi
if has_part p5; then
  printf '  P5 store / one image          %6.2fx   target <= 2x    %s\n' "$(echo "$rooms_store / $room1" | bc -l)" "$(met "$rooms_store / $room1" '<=' 2)"
fi
if has_part capture; then
  printf '  capture with chunks vs GNU    %6.2fx   target >= 1.2x  %s  (P1 pipeline; without chunks %.2fx; loopback into the store %.2fx)\n' "$speedup" "$(met "$speedup" '>=' 1.2)" "$speedup_plain" "$speedup_loop"
fi
printf '  (this run: %d min %02d s)\n' $(( SECONDS / 60 )) $(( SECONDS % 60 ))
[ "$failed" = 0 ] || { say "a deployed tree differs from the bench tree (see above)"; exit 1; }
