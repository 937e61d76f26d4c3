#!/usr/bin/env bash
# Benchmark: tracekit analyze on two 1 GB traces of the same traffic, against tracekit info on
# the same two files (the issue's yardstick: analyze ≤ 2× info) and against tshark's TCP
# conversation table over both (what an analyst would start from), in one run, with ratios.
# The second trace is a copy of the first shifted by 1.5 s with editcap, so every connection is
# found in both and compared field by field (the heaviest case).
# Usage: bench/analyze.sh   (RUNS=N best of N, default 3; tshark runs once)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare editcap wireshark-common
a="$out/merge-a.pcap"
b="$out/analyze-b.pcap"
[ -f "$a" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 50000 --seed 1 -o "$a"
[ -f "$b" ] || editcap -t 1.5 "$a" "$b"
cat "$a" "$b" > /dev/null


echo "machine: $(nproc) cores; $(tshark --version | head -1)"
t_info=$(best ./target/release/tracekit info "$a" "$b")
t_an=$(best ./target/release/tracekit analyze -q "$a" "$b")
t_an_json=$(best ./target/release/tracekit analyze -q --json "$a" "$b")
mem=$(python3 bench/peak.py ./target/release/tracekit analyze -q "$a" "$b")
runs=1
t_tshark=$(best sh -c "tshark -n -q -r $a -z conv,tcp & tshark -n -q -r $b -z conv,tcp & wait")
summary=$(./target/release/tracekit analyze -q "$a" "$b" | sed -n 3,4p)
python3 - "$t_info" "$t_an" "$t_an_json" "$t_tshark" "$mem" "$summary" <<'PY'
import sys
info, an, js, ts = map(float, sys.argv[1:5])
peak_total, peak_anon = sys.argv[5].split()
print(sys.argv[6])
print(f"{'two 1 GB traces':<40} {'seconds':>8} {'vs info':>8} {'tshark/x':>9}")
for name, t in [("tracekit info", info), ("tracekit analyze (text)", an),
                ("tracekit analyze --json", js), ("tshark -z conv,tcp (both, parallel)", ts)]:
    print(f"{name:<40} {t:8.3f} {t/info:7.1f}x {ts/t:8.1f}x")
print(f"analyze peak RSS {int(peak_total)//1024} MB, of which allocated {int(peak_anon)//1024} MB")
PY
