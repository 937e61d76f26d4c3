#!/usr/bin/env bash
# Benchmark: tracekit info against capinfos and a raw read (cat) of the same page-cached file,
# in one run, printing the ratios. Usage: bench/run.sh [SIZE_GB] (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=${1:-2}
runs=${RUNS:-5}
out=bench/out
mkdir -p "$out"
file="$out/bench-${size_gb}g.pcap"
cargo build --release --quiet -p tracekit -p tracekit-bench
command -v capinfos >/dev/null || { echo "capinfos missing: apt-get install wireshark-common" >&2; exit 2; }

if [ ! -f "$file" ]; then
  bytes=$(python3 -c "print(int(float('$size_gb') * 1e9))")
  ./target/release/tracekit-bench gen --size "$bytes" --flows 100000 --seed 42 -o "$file"
fi
ngfile="$out/bench-${size_gb}g.pcapng"
if [ ! -f "$ngfile" ]; then
  editcap -F pcapng "$file" "$ngfile"
fi

# Best of $runs wall-clock seconds for a command (output discarded).
# shellcheck source=bench/lib.sh
. bench/lib.sh

peak_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

echo "machine: $(nproc) cores; $(uname -r); capinfos: $(capinfos --version | head -1)"
# A file just written by another program sits in the page cache in small folios, which makes
# every mapping reader fault 10x more often than for a file read in by readahead (the usual
# state of a capture being analysed). Start both files from the same state when we may.
if [ -w /proc/sys/vm/drop_caches ]; then
  sync && echo 3 > /proc/sys/vm/drop_caches
else
  echo "note: cannot drop the page cache (not root); figures may vary with how the files were cached"
fi
for f in "$file" "$ngfile"; do
  cat "$f" >/dev/null  # into the page cache
  size=$(stat -c %s "$f")
  packets=$(./target/release/tracekit info --json "$f" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
  t_cat=$(best cat "$f")
  t_info=$(best ./target/release/tracekit info "$f")
  t_capinfos=$(best capinfos "$f")
  t_capinfos_c=$(best capinfos -c -M "$f")
  mem_info=$(peak_kb ./target/release/tracekit info "$f")
  mem_capinfos=$(peak_kb capinfos "$f")
  python3 - "$f" "$size" "$packets" "$t_cat" "$t_info" "$t_capinfos" "$t_capinfos_c" "$mem_info" "$mem_capinfos" <<'PY'
import sys
f, size, packets, cat, info, cap, capc, mi, mc = sys.argv[1:]
size, packets = int(size), int(packets)
cat, info, cap, capc = map(float, (cat, info, cap, capc))
gb = size / 1e9
print(f"\n{f}: {gb:.2f} GB, {packets} packets (best of runs, page cache warm)")
print(f"  {'command':<28}{'seconds':>9}{'GB/s':>8}{'peak RSS':>12}")
print(f"  {'cat > /dev/null':<28}{cat:>9.3f}{gb/cat:>8.1f}")
print(f"  {'tracekit info':<28}{info:>9.3f}{gb/info:>8.1f}{int(mi)//1024:>9} MB")
print(f"  {'capinfos':<28}{cap:>9.3f}{gb/cap:>8.1f}{int(mc)//1024:>9} MB")
print(f"  {'capinfos -c -M (count only)':<28}{capc:>9.3f}{gb/capc:>8.1f}")
print(f"  ratios: capinfos / tracekit info = {cap/info:.1f}x, capinfos -c / tracekit info = {capc/info:.1f}x, "
      f"tracekit info / cat = {info/cat:.2f}x")
PY
done
# split --by stream against cp to the same disk. File creation dominates: each run writes into
# a fresh directory, and the previous run's outputs are deleted only after a sync and a pause
# (ext4 finishes a large delete in the background, which slows the next run's creates). The
# same pair runs again on tmpfs (/dev/shm) when it has room, which leaves out the disk.
echo
split_vs_cp() {
  local dir=$1 label=$2
  local scratch
  scratch=$(mktemp -d "$dir/tracekit-split-bench.XXXXXX")
  sync; sleep 5
  local t0 t1 t2 t3
  t0=$(date +%s%N); cp "$file" "$scratch/copy.pcap"; sync; t1=$(date +%s%N)
  rm -f "$scratch/copy.pcap"; sync; sleep 2
  local peak
  peak=$(python3 bench/peak.py ./target/release/tracekit split -q -o "$scratch/streams" "$file")
  # Deleting 177k files keeps ext4 busy long after rm returns: keep them until the end.
  sync; sleep 5
  t2=$(date +%s%N); ./target/release/tracekit split -q -o "$scratch/streams2" "$file" 2>/dev/null; sync; t3=$(date +%s%N)
  local outputs
  outputs=$(find "$scratch/streams2" -type f | wc -l)
  # The floor: the same files with the same sizes written from memory on both cores (no
  # reading, no dissection), timed the same way.
  sync; sleep 5
  local t4 t5
  t4=$(date +%s%N); ./target/release/tracekit-bench files --like "$scratch/streams2" --threads "$(nproc)" -o "$scratch/floor" >/dev/null; sync; t5=$(date +%s%N)
  rm -rf "$scratch"; sync
  python3 - "$label" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$outputs" $peak <<'PY'
import sys
label = sys.argv[1]
t0, t1, t2, t3, t4, t5, outputs, peak, anon = map(int, sys.argv[2:])
cp, split, floor = (t1 - t0) / 1e9, (t3 - t2) / 1e9, (t5 - t4) / 1e9
print(f"{label}: split --by stream {split:.2f} s for {outputs} outputs; cp {cp:.2f} s; "
      f"ratio split / cp = {split / cp:.1f}x; peak RSS {peak // 1024} MB "
      f"(of which allocated {anon // 1024} MB, the rest mapped input pages)")
print(f"{label}: floor (the same {outputs} files written from memory, no reading) {floor:.2f} s "
      f"= {floor / cp:.1f}x cp; split / floor = {split / floor:.1f}x")
PY
}
split_vs_cp "$out" "$(df --output=fstype "$out" | tail -1) disk"
size=$(stat -c %s "$file")
if [ -d /dev/shm ] && [ "$(df --output=avail -B1 /dev/shm | tail -1)" -gt $(( size * 3 )) ]; then
  split_vs_cp /dev/shm "tmpfs"
fi

echo
./target/release/tracekit-bench read "$file"
./target/release/tracekit-bench read "$ngfile"
./target/release/tracekit-bench dissect "$file"
