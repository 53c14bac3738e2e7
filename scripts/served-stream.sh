#!/usr/bin/env bash
# Writes the stream FILE of an image as the endpoint serves it, for the benches' baselines
# (curl, udp-sender) that read a plain file:
#   scripts/served-stream.sh IMAGE_DIR FILE OUT
# A chunked stream (IMAGE_DIR/FILE.idx.zst) is its chunk files concatenated in the index's
# order (images/README.md, "Chunk store"); a single-file stream is copied.
set -euo pipefail
dir=$1 file=$2 out=$3
if [ -f "$dir/$file.idx.zst" ]; then
  chunks=$(cd "$dir/../../chunks" && pwd)
  zstd -dcq "$dir/$file.idx.zst" | tail -n +2 \
    | awk -v c="$chunks" '{ print c "/" substr($1, 1, 2) "/" $1 ".zst" }' \
    | xargs cat >"$out"
else
  cp -- "$dir/$file" "$out"
fi
