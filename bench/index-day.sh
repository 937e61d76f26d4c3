#!/usr/bin/env bash
# Benchmark: a 5-minute time window over a day's set (issue: the index reads only the blocks
# in that window). A set of about 200 rotated files spanning 24 hours (generated, 4 GB by
# default), indexed; a 5-minute window in its middle extracted by a full scan (a header walk
# passes over files outside the window), from the index, and by editcap -A/-B over each file
# (the Wireshark way), with the records each reads and identical output checked.
# Usage: bench/index-day.sh [SIZE_GB] [FILES]   (default 4 and 200; RUNS=N best of N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare editcap tshark
size_gb=${1:-4}
files=${2:-200}
set_dir="$out/index-day-${size_gb}g"
ix="$out/index-day-${size_gb}g.idx"
if [ ! -d "$set_dir" ]; then
  big="$out/index-day-big.pcap"
  bytes=$(python3 -c "print(int(float('$size_gb') * 1e9))")
  # About 650 bytes a packet: a day is 86,400 s over size/650 packets, twice the mean gap.
  gap=$(python3 -c "print(int(2 * 86400e9 / (float('$size_gb') * 1e9 / 650)))")
  ./target/release/tracekit-bench gen --size "$bytes" --flows 20000 --seed 11 --max-gap-ns "$gap" -o "$big"
  packets=$(./target/release/tracekit info "$big" | awk '/^Packets:/ {print $2; exit}')
  ./target/release/tracekit split -q --by "count=$(( (packets + files - 1) / files ))" -o "$set_dir" "$big"
  rm -f "$big"
fi
n=$(ls "$set_dir" | wc -l)
echo "machine: $(nproc) cores; set: $n files, $(du -sh "$set_dir" | cut -f1)"
cat "$set_dir"/* > /dev/null
[ -f "$ix/tracekit-index.json" ] || ./target/release/tracekit index -q -o "$ix" "$set_dir"

read -r first last < <(python3 -c "
import json
m = json.load(open('$ix/tracekit-index.json'))
print(min(f['first_ns'] for f in m['files']), max(f['last_ns'] for f in m['files']))")
a=$(( first + (last - first) / 2 )); b=$(( a + 300000000000 ))
after=$(python3 -c "print(f'{$a/1e9:.9f}')"); before=$(python3 -c "print(f'{$b/1e9:.9f}')")
t_full=$(best ./target/release/tracekit extract -q --after "$after" --before "$before" -o "$out/day-full.pcap" "$set_dir")
t_ix=$(best ./target/release/tracekit extract -q --index "$ix" --after "$after" --before "$before" -o "$out/day-ix.pcap")
mem=$(python3 bench/peak.py ./target/release/tracekit extract -q --index "$ix" --after "$after" --before "$before" -o "$out/day-ix.pcap")
cmp -s "$out/day-full.pcap" "$out/day-ix.pcap" && same=yes || same=NO
# editcap takes local-time strings; TZ=UTC makes them UTC.
A=$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp($a/1e9, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f'))")
B=$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp($b/1e9, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f'))")
mkdir -p "$out/day-editcap"
t_editcap=$(runs=1 best sh -c "for f in $set_dir/*; do TZ=UTC editcap -F pcap -A '$A' -B '$B' \$f $out/day-editcap/\$(basename \$f); done")
said=$(./target/release/tracekit extract --index "$ix" --after "$after" --before "$before" -o "$out/day-ix.pcap" 2>&1)
sel=$(echo "$said" | awk '/selected of/ {print $1}')
read_=$(echo "$said" | awk '/selected of/ {print $5}')
said_full=$(./target/release/tracekit extract --after "$after" --before "$before" -o "$out/day-full.pcap" "$set_dir" 2>&1)
packets=$(python3 -c "
import json
print(sum(f['packets'] for f in json.load(open('$ix/tracekit-index.json'))['files']))")
echo "window: $A .. $B UTC (5 minutes of $(( (last - first) / 3600000000000 )) hours)"
echo "full scan: $(echo "$said_full" | grep -E 'passed over' | sed 's/^ *//')"
echo "index: $sel packets selected of $read_ records read (of $packets in the set); same bytes as the full scan: $same; query peak RSS $(( $(echo "$mem" | cut -d' ' -f1) / 1024 )) MB"
python3 - "$t_full" "$t_ix" "$t_editcap" <<'PY'
import sys
full, ix, ed = map(float, sys.argv[1:4])
print(f"{'':<52} {'seconds':>8}  ratio")
print(f"{'editcap -A -B over each file':<52} {ed:8.3f}")
print(f"{'tracekit extract --after --before, full scan':<52} {full:8.3f}")
print(f"{'tracekit extract --index --after --before':<52} {ix:8.3f}  {full/ix:.1f}x the full scan, {ed/ix:.1f}x editcap")
PY
