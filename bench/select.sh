#!/usr/bin/env bash
# Benchmark: selection, extract and flows against tcpdump, editcap and tshark in one run,
# printing ratios (outputs on tmpfs, inputs page-cached).
#  1. extract --filter 'host A and port 443' over a 1 GB capture, where it matches little,
#     against tracekit info and tcpdump -r … -w … with the same expression;
#  2. --hosts-file with 100,000 prefixes against the single-host filter;
#  3. a 10-minute-wide time window over a 100-file rotated set against the whole set, and
#     against editcap -A/-B on the unsplit file;
#  4. flows over the 1 GB capture against tshark -q -z conv,tcp -z conv,udp (peak RSS too).
# Usage: bench/select.sh   (RUNS=N best of N, default 3; tshark runs once)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare tcpdump tcpdump
prepare tshark tshark
T=./target/release/tracekit
big="$out/merge-a.pcap"
[ -f "$big" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 50000 --seed 1 -o "$big"
shm=/dev/shm/tracekit-bench-select
mkdir -p "$shm"
cat "$big" >/dev/null
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

# A host with one TLS conversation: the filter matches little.
$T flows -q --format csv -o "$shm/flows.csv" "$big" 2>/dev/null
host=$(awk -F, '$7 == 443 && $11 + $12 < 60 {print $4; exit}' "$shm/flows.csv")
expr="host $host and port 443"
echo "1 GB capture: $(du -h "$big" | cut -f1), filter: $expr"
t_info=$(best $T info "$big")
t_extract=$(best $T extract -q --filter "$expr" -o "$shm/x.pcap" "$big")
t_tcpdump=$(best tcpdump -r "$big" -w "$shm/y.pcap" "$expr")
n=$($T info --json "$shm/x.pcap" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
echo "  tracekit info                 $t_info s"
echo "  tracekit extract --filter     $t_extract s  ($(ratio "$t_extract" "$t_info")x info; $n packets)"
echo "  tcpdump -r -w EXPR            $t_tcpdump s  (tcpdump / extract = $(ratio "$t_tcpdump" "$t_extract"))"

# 100,000 prefixes (random /32s and /24s, and the host above).
python3 - "$host" >"$shm/hosts.txt" <<'PY'
import random, sys
random.seed(7)
print(sys.argv[1])
for i in range(99_999):
    a = random.getrandbits(32)
    if i % 2:
        print(f"{a>>24}.{(a>>16)&255}.{(a>>8)&255}.0/24")
    else:
        print(f"{a>>24}.{(a>>16)&255}.{(a>>8)&255}.{a&255}")
PY
printf '%s\n' "$host" >"$shm/one.txt"
t_one=$(best $T extract -q --hosts-file "$shm/one.txt" -o "$shm/h1.pcap" "$big")
t_many=$(best $T extract -q --hosts-file "$shm/hosts.txt" -o "$shm/h2.pcap" "$big")
t_host=$(best $T extract -q --filter "host $host" -o "$shm/h3.pcap" "$big")
echo "  --hosts-file, 1 entry         $t_one s"
echo "  --hosts-file, 100,000 entries $t_many s  ($(ratio "$t_many" "$t_one")x one entry; --filter 'host A' $t_host s)"

# A rotated set of 100 files cut from the capture; a window of a tenth of its span.
set100="$out/rotated-100"
if [ ! -d "$set100" ]; then
  packets=$($T info --json "$big" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
  $T split -q --by "count=$(( (packets + 99) / 100 ))" -o "$set100" "$big"
fi
cat "$set100"/* >/dev/null
read -r first last < <($T info --json "$big" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['first_ts_epoch'], d['last_ts_epoch'])")
after=$(python3 -c "f,l=$first,$last; print(f'{f+(l-f)*0.45:.6f}')")
before=$(python3 -c "f,l=$first,$last; print(f'{f+(l-f)*0.55:.6f}')")
t_window=$(best $T extract -q --after "$after" --before "$before" -o "$shm/w.pcap" "$set100")
t_whole=$(best $T extract -q --after "$first" -o "$shm/all.pcap" "$set100")
t_editcap=$(best editcap -A "$after" -B "$before" "$big" "$shm/e.pcap")
read_files=$($T extract --after "$after" --before "$before" -o "$shm/w.pcap" "$set100" 2>&1 | grep -o '[0-9]* file(s) ([0-9]* bytes) read' || true)
echo "100-file rotated set, window of a tenth of the span:"
echo "  tracekit extract --after --before   $t_window s  ($read_files)"
echo "  tracekit extract, whole set         $t_whole s  (window / whole = $(ratio "$t_window" "$t_whole"))"
echo "  editcap -A -B on the unsplit file   $t_editcap s  (editcap / extract = $(ratio "$t_editcap" "$t_window"))"

# flows against tshark's conversation tables.
runs_saved=$runs
t_flows=$(best $T flows -q -o "$shm/flows.jsonl" "$big")
rss=$( { /usr/bin/time -f "%M" $T flows -q -o "$shm/flows.jsonl" "$big" >/dev/null; } 2>&1 | tail -1)
runs=1
t_tshark=$(best tshark -n -q -r "$big" -z conv,tcp -z conv,udp)
runs=$runs_saved
nflows=$(wc -l <"$shm/flows.jsonl")
echo "flows over the 1 GB capture ($nflows flows):"
echo "  tracekit flows                     $t_flows s  (peak RSS $((rss / 1024)) MB)"
echo "  tshark -z conv,tcp -z conv,udp     $t_tshark s  (tshark / flows = $(ratio "$t_tshark" "$t_flows"))"
rm -rf "$shm"
