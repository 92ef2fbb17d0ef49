#!/usr/bin/env bash
# The storage engine's figures beside the disk's, in one run (docs/benchmarks.md).
# Usage: scripts/bench-log.sh   (writes 1 GiB twice to $TMPDIR, then runs the criterion bench)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== machine"
nproc; grep -m1 'model name' /proc/cpuinfo || true; df -h "$tmp" | tail -1
echo "== dd: sequential write, one fdatasync at the end (the ceiling for group commit)"
dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1
rm -f "$tmp/dd"
echo "== dd: sequential write, fdatasync after every 1 MiB block (one fsync per MiB, like the bench)"
dd if=/dev/zero of="$tmp/dd" bs=1M count=256 oflag=dsync 2>&1 | tail -1
rm -f "$tmp/dd"
echo "== dd: sequential write to the page cache, no sync"
dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 2>&1 | tail -1
rm -f "$tmp/dd"
dd if=/dev/zero of="$tmp/dd" bs=16k count=65536 2>&1 | tail -1
rm -f "$tmp/dd"
echo "== criterion"
TMPDIR="$tmp" cargo bench -p rill-log --bench log -- --noplot "$@"
