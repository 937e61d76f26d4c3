#!/usr/bin/env bash
# Benchmark: tracekit analyze across two capture sets against analyze on the two whole files, in
# one run, with ratios (issue: two 1 GB sets of 50 files each within 1.2x of the merged files,
# memory as for them). The sets are the bench's 1 GB pair (merge-a.pcap and its copy shifted by
# 1.5 s, as bench/analyze.sh makes them) cut by editcap at other boundaries on each side: side A
# in 50 files, side B in 51, B's files renamed so that name order is not time order. Also
# checks that both runs report the same connections (the JSON without the file names).
# Usage: bench/analyze-sets.sh   (RUNS=N best of N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare editcap wireshark-common
echo "machine: $(nproc) cores"

a="$out/merge-a.pcap"
b="$out/analyze-b.pcap"
[ -f "$a" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 50000 --seed 1 -o "$a"
[ -f "$b" ] || editcap -t 1.5 "$a" "$b"
sa="$out/sets-a"
sb="$out/sets-b"
if [ ! -d "$sb" ]; then
  rm -rf "$sa" "$sb"
  mkdir -p "$sa" "$sb"
  packets=$(capinfos -c -M "$a" | awk '/Number of packets/ {print $NF}')
  editcap -c $(( (packets + 49) / 50 )) "$a" "$sa/a.pcap"
  editcap -c $(( (packets + 50) / 51 )) "$b" "$sb/b.pcap"
  n=0
  for f in $(ls "$sb" | sort -r); do mv "$sb/$f" "$sb/sensor2-$(printf %03d $n).pcap"; n=$((n + 1)); done
fi
echo "side A: $(ls "$sa" | wc -l) files, side B: $(ls "$sb" | wc -l) files, $(du -sh "$sa" | cut -f1) + $(du -sh "$sb" | cut -f1)"
cat "$a" "$b" "$sa"/* "$sb"/* > /dev/null

t_whole=$(best ./target/release/tracekit analyze -q "$a" "$b")
t_sets=$(best ./target/release/tracekit analyze -q "$sa" "$sb")
t_whole_json=$(best ./target/release/tracekit analyze -q --json "$a" "$b")
t_sets_json=$(best ./target/release/tracekit analyze -q --json "$sa" "$sb")
mem_whole=$(python3 bench/peak.py ./target/release/tracekit analyze -q "$a" "$b")
mem_sets=$(python3 bench/peak.py ./target/release/tracekit analyze -q "$sa" "$sb")
same=$(python3 - "$a" "$b" "$sa" "$sb" <<'PY'
import json, subprocess, sys
def run(*args):
    v = json.loads(subprocess.run(["./target/release/tracekit", "analyze", "-q", "--json", *args],
                                  check=True, capture_output=True).stdout)
    v.pop("sets", None)
    for s in "ab":
        v["traces"][s].pop("name")
    for c in v["connections"]:
        for s in "ab":
            c["sides"][s].pop("trace")
        for e in c["evidence"]:
            for k in ("files_a", "files_b", "filter_a", "filter_b"):
                e.pop(k, None)
    return v
whole, sets = run(sys.argv[1], sys.argv[2]), run(sys.argv[3], sys.argv[4])
print(f"{len(sets['connections'])} connections; same analysis as the whole files: {whole == sets}")
PY
)
echo "$same"
python3 - "$t_whole" "$t_sets" "$t_whole_json" "$t_sets_json" "$mem_whole" "$mem_sets" <<'PY'
import sys
w, s, wj, sj = map(float, sys.argv[1:5])
mw, ms = (int(x.split()[0]) // 1024 for x in sys.argv[5:7])
print(f"{'':<44} {'seconds':>8} {'sets/whole':>10}")
print(f"{'analyze, the two whole files (text)':<44} {w:8.3f}")
print(f"{'analyze, the two sets (text)':<44} {s:8.3f} {s/w:9.2f}x")
print(f"{'analyze --json, the two whole files':<44} {wj:8.3f}")
print(f"{'analyze --json, the two sets':<44} {sj:8.3f} {sj/wj:9.2f}x")
print(f"peak RSS: whole files {mw} MB, sets {ms} MB ({ms/mw:.2f}x)")
PY
