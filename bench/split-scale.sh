#!/usr/bin/env bash
# Scale run for `tracekit split --by stream` (issue: "one million streams with the default
# open-file limit of 1024: no lost packet, no quadratic slowdown, memory grows with the streams").
# Three generated captures with about 0.25, 0.5 and 1.0+ million TCP/UDP streams (same packets
# per stream) are split under `ulimit -n 1024`; for each: seconds, seconds per 100k streams,
# peak memory (total / allocated), and the conservation check (the index's packets add up to
# the input's, one output per stream). Usage: bench/split-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare python3 python3
ulimit -n 1024
echo "machine: $(nproc) cores; open-file limit $(ulimit -n); outputs in ${SCALE_DIR:-/dev/shm/tracekit-scale}"
printf '%-10s %10s %10s %9s %12s %14s %s\n' flows streams packets seconds "s/100k str" "peak MB" check
for flows in 290000 575000 1150000; do
  f="$out/scale-$flows.pcap"
  [ -f "$f" ] || ./target/release/tracekit-bench gen --size $((flows * 400)) --flows "$flows" --seed 7 -o "$f" >/dev/null 2>&1
  d="${SCALE_DIR:-/dev/shm/tracekit-scale}"; idx="$out/scale-index.csv"
  rm -rf "$d" "$idx"; sync
  t0=$(date +%s%N)
  ./target/release/tracekit split -q --by stream --index "$idx" -o "$d" "$f" 2>/dev/null
  t1=$(date +%s%N)
  rm -rf "$d"; sync
  mem=$(python3 bench/peak.py ./target/release/tracekit split -q --by stream -o "$d" "$f")
  rm -rf "$d"
  packets=$(./target/release/tracekit info --json "$f" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
  python3 - "$flows" "$packets" "$t0" "$t1" "$mem" "$idx" <<'PY'
import csv, sys
flows, packets, t0, t1 = (int(x) for x in sys.argv[1:5])
total_kb, anon_kb = (int(x) for x in sys.argv[5].split())
rows = list(csv.DictReader(open(sys.argv[6])))
streams = len(rows)
indexed = sum(int(r["packets"]) for r in rows)
files = len({r["file"] for r in rows})
secs = (t1 - t0) / 1e9
ok = "ok" if indexed == packets and files == streams else f"MISMATCH index {indexed} files {files}"
print(f"{flows:<10} {streams:>10} {packets:>10} {secs:>9.2f} {secs / streams * 1e5:>12.2f} {total_kb // 1024:>6} / {anon_kb // 1024:<5} {ok}")
PY
done
