#!/usr/bin/env bash
# Benchmark: tracekit index and extract --index on a set of rotated files (issue: about 200
# files, 20 GB), against flows over the same set (index <= 1.5x flows), the full-scan extract
# and tcpdump over the set for a one-host query (the index >= 50x faster, identical output),
# and a time window of a twentieth of the set; index size and peak memory reported.
# Usage: bench/index.sh [SIZE_GB] [FILES]   (default 20 and 200; RUNS=N best of N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare tcpdump tcpdump
size_gb=${1:-20}
files=${2:-200}
set_dir="$out/index-set-${size_gb}g"
set_dir_abs=$(realpath -m "$set_dir")
ix="$out/index-${size_gb}g.idx"
if [ ! -d "$set_dir" ]; then
  big="$out/index-big.pcap"
  bytes=$(python3 -c "print(int(float('$size_gb') * 1e9))")
  flows=$(python3 -c "print(int(float('$size_gb') * 50000))")
  ./target/release/tracekit-bench gen --size "$bytes" --flows "$flows" --seed 7 -o "$big"
  packets=$(./target/release/tracekit info "$big" | awk '/^Packets:/ {print $2; exit}')
  ./target/release/tracekit split -q --by "count=$(( (packets + files - 1) / files ))" -o "$set_dir" "$big"
  rm -f "$big"
fi
n=$(ls "$set_dir" | wc -l)
echo "machine: $(nproc) cores; set: $n files, $(du -sh "$set_dir" | cut -f1)"
cat "$set_dir"/* > /dev/null

t_flows=$(best ./target/release/tracekit flows -o /dev/null "$set_dir")
t_index=$(runs=1 best sh -c "rm -rf $ix && ./target/release/tracekit index -q -o $ix $set_dir")
rm -rf "$ix.peak"
mem_index=$(python3 bench/peak.py ./target/release/tracekit index -q -o "$ix.peak" "$set_dir")
mem_flows=$(python3 bench/peak.py ./target/release/tracekit flows -o /dev/null "$set_dir")
rm -rf "$ix.peak"
ix_bytes=$(du -sb "$ix" | cut -f1)
set_bytes=$(du -sb "$set_dir" | cut -f1)
t_again=$(best ./target/release/tracekit index -q -o "$ix" "$set_dir")

# The set grown by its last rotated file: an index of the others, then of them all, with and
# without --flow-state (with it, the flow table is carried on from the state the first run
# saved, reading only the new file); the tables equal the fresh index's, byte for byte.
mapfile -t all < <(find "$set_dir_abs" -type f | sort)
grow() {  # grow [--flow-state]: seconds of the run that adds the last file; state bytes
  rm -rf "$ix.grow"
  ./target/release/tracekit index -q "$@" -o "$ix.grow" "${all[@]:0:${#all[@]}-1}" 2>/dev/null
  local t; t=$(runs=1 best ./target/release/tracekit index -q "$@" -o "$ix.grow" "${all[@]}")
  cmp -s "$ix/flows.parquet" "$ix.grow/flows.parquet" || { echo "grown flow table differs" >&2; exit 1; }
  echo "$t $(stat -c %s "$ix.grow/flows.state" 2>/dev/null || echo 0)"
}
read -r t_grow _ < <(grow)
read -r t_grow_state state_bytes < <(grow --flow-state)
t_index_state=$(runs=1 best sh -c "rm -rf $ix.grow && ./target/release/tracekit index -q --flow-state -o $ix.grow $set_dir")
rm -rf "$ix.grow"

# The set read into the page cache again: the index runs above (4 GB resident) push part of
# it out on a 24 GB machine, and the warm queries below mean the set in memory.
cat "$set_dir"/* > /dev/null
# A host in about 0.1% of the flows, and a host of one flow.
read -r host rare < <(./target/release/tracekit flows --format csv "$set_dir" | python3 -c "
import csv, collections, sys
c = collections.Counter(); n = 0
for r in csv.DictReader(sys.stdin):
    n += 1; c[r['client']] += 1; c[r['server']] += 1
target = max(1, n // 1000)
print(min(c, key=lambda h: (abs(c[h] - target), h)), min(h for h in c if c[h] == 1))")
query() {  # query LABEL FILTER: full scan, index, tcpdump; prints one line of figures
  local filter=$2 t_full t_ix t_td mem same sel
  t_full=$(best ./target/release/tracekit extract -q --filter "$filter" -o "$out/ix-full.pcap" "$set_dir")
  t_ix=$(best ./target/release/tracekit extract -q --index "$ix" --filter "$filter" -o "$out/ix-query.pcap")
  mem=$(python3 bench/peak.py ./target/release/tracekit extract -q --index "$ix" --filter "$filter" -o "$out/ix-query.pcap")
  t_td=$(runs=1 best sh -c "for f in $set_dir/*; do tcpdump -r \$f -w - '$filter' 2>/dev/null; done > /dev/null")
  cmp -s "$out/ix-full.pcap" "$out/ix-query.pcap" && same=yes || same=NO
  sel=$(./target/release/tracekit info "$out/ix-query.pcap" | awk '/^Packets:/ {print $2; exit}')
  read_=$(./target/release/tracekit extract --index "$ix" --filter "$filter" -o "$out/ix-query.pcap" 2>&1 | awk '/selected of/ {print $5}')
  echo "$1|$filter|$t_full|$t_ix|$t_td|$mem|$same|$sel|$read_"
}
q1=$(query "host in 0.1% of the flows" "host $host")
q2=$(query "host of one flow" "host $rare")
# flows from the index: the stored table (no packet read), and narrowed by a host.
t_flows_ix=$(best ./target/release/tracekit flows --index "$ix" -o "$out/ix-flows-ix.jsonl")
./target/release/tracekit flows -o "$out/ix-flows-full.jsonl" "$set_dir_abs"
cmp -s "$out/ix-flows-full.jsonl" "$out/ix-flows-ix.jsonl" && fsame=yes || fsame=NO
t_fh_full=$(best ./target/release/tracekit flows --filter "host $rare" -o "$out/ix-fh-full.jsonl" "$set_dir_abs")
t_fh_ix=$(best ./target/release/tracekit flows --index "$ix" --filter "host $rare" -o "$out/ix-fh-ix.jsonl")
cmp -s "$out/ix-fh-full.jsonl" "$out/ix-fh-ix.jsonl" && fhsame=yes || fhsame=NO
# One flow by its Community ID.
cid=$(head -1 "$out/ix-fh-full.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)['community_id'])")
t_c_full=$(best ./target/release/tracekit extract -q --community-id "$cid" -o "$out/ix-c-full.pcap" "$set_dir")
t_c_ix=$(best ./target/release/tracekit extract -q --index "$ix" --community-id "$cid" -o "$out/ix-c-ix.pcap")
cmp -s "$out/ix-c-full.pcap" "$out/ix-c-ix.pcap" && csame=yes || csame=NO
flows_bytes=$(stat -c %s "$ix/flows.parquet")
rm -f "$out"/ix-flows-*.jsonl  # 2.4 GB each, compared already
# A window of a twentieth of the set's time, in its middle.
read -r first last < <(python3 -c "
import json
m = json.load(open('$ix/tracekit-index.json'))
print(min(f['first_ns'] for f in m['files']), max(f['last_ns'] for f in m['files']))")
if [ "$first" != 0 ]; then
  span=$(( last - first )); a=$(( first + span / 2 )); b=$(( a + span / 20 ))
  after=$(python3 -c "print(f'{$a/1e9:.9f}')"); before=$(python3 -c "print(f'{$b/1e9:.9f}')")
  win_full=$(best ./target/release/tracekit extract -q --after "$after" --before "$before" -o "$out/ix-wfull.pcap" "$set_dir")
  win_ix=$(best ./target/release/tracekit extract -q --index "$ix" --after "$after" --before "$before" -o "$out/ix-wquery.pcap")
  cmp "$out/ix-wfull.pcap" "$out/ix-wquery.pcap" && wsame=yes || wsame=NO
  wread=$(./target/release/tracekit extract --index "$ix" --after "$after" --before "$before" --filter "ip or ip6" -o "$out/ix-wquery2.pcap" 2>&1 | awk '/selected of/ {print $5}')
  rm -f "$out"/ix-wfull.pcap "$out"/ix-wquery.pcap "$out"/ix-wquery2.pcap
else
  win_full=0; win_ix=0; wsame=n/a; wread=n/a
fi
packets=$(python3 -c "
import json
print(sum(f['packets'] for f in json.load(open('$ix/tracekit-index.json'))['files']))")
python3 - "$t_flows" "$t_index" "$t_again" "$win_full" "$win_ix" "$ix_bytes" "$set_bytes" \
  "$mem_index" "$wsame" "$wread" "$packets" "$q1" "$q2" \
  "$t_flows_ix|$fsame|$t_fh_full|$t_fh_ix|$fhsame|$t_c_full|$t_c_ix|$csame|$flows_bytes" \
  "$mem_index" "$mem_flows" "$t_grow|$t_grow_state|$t_index_state|$state_bytes" <<'PY'
import sys
fl, ix, again, wf, wq = map(float, sys.argv[1:6])
ixb, setb = int(sys.argv[6]), int(sys.argv[7])
mi = int(sys.argv[8].split()[0]) // 1024
wsame, wread, packets = sys.argv[9], sys.argv[10], sys.argv[11]
print(f"{'':<52} {'seconds':>8}  ratio")
print(f"{'tracekit flows over the set':<52} {fl:8.3f}")
print(f"{'tracekit index (fresh)':<52} {ix:8.3f}  {ix/fl:.2f}x flows")
print(f"{'tracekit index again (nothing changed)':<52} {again:8.3f}")
g, gs, ixs, stb = (float(v) for v in sys.argv[17].split("|"))
print(f"{'tracekit index --flow-state (fresh)':<52} {ixs:8.3f}  {ixs/fl:.2f}x flows; the state {stb/1e6:.1f} MB, {100*stb/setb:.2f}% of the set")
print(f"{'tracekit index, the set grown by one file':<52} {g:8.3f}  {g/fl:.2f}x flows (the flow table counted again)")
print(f"{'tracekit index, grown by one file, with the state':<52} {gs:8.3f}  {gs/fl:.2f}x flows, {g/gs:.1f}x faster than without")
for q in sys.argv[12:14]:
    label, filt, full, q_, td, mem, same, sel, read = q.split("|")
    full, q_, td = float(full), float(q_), float(td)
    print(f"{label}: --filter '{filt}': {sel} packets, {read} of {packets} records read; same bytes as the full scan: {same}; query peak RSS {int(mem.split()[0])//1024} MB ({int(mem.split()[1])//1024} MB allocated)")
    print(f"{'  tracekit extract, full scan':<52} {full:8.3f}")
    print(f"{'  tcpdump -r each file in turn':<52} {td:8.3f}")
    print(f"{'  tracekit extract --index':<52} {q_:8.3f}  {full/q_:.1f}x the full scan, {td/q_:.1f}x tcpdump")
if wf:
    print(f"window of a twentieth of the set's time: same bytes: {wsame}; {wread} of {packets} records read")
    print(f"{'  tracekit extract, full scan':<52} {wf:8.3f}")
    print(f"{'  tracekit extract --index':<52} {wq:8.3f}  {wf/wq:.1f}x")
fix, fsame, fhf, fhi, fhsame, cf, ci, csame, flb = sys.argv[14].split("|")
fix, fhf, fhi, cf, ci, flb = float(fix), float(fhf), float(fhi), float(cf), float(ci), int(flb)
print(f"flows --index (the stored table, no packet read): same rows: {fsame}")
print(f"{'  tracekit flows over the set':<52} {fl:8.3f}")
print(f"{'  tracekit flows --index':<52} {fix:8.3f}  {fl/fix:.1f}x")
print(f"flows of the host of one flow: same rows: {fhsame}")
print(f"{'  tracekit flows --filter, full scan':<52} {fhf:8.3f}")
print(f"{'  tracekit flows --index --filter':<52} {fhi:8.3f}  {fhf/fhi:.1f}x")
print(f"one flow by --community-id: same bytes: {csame}")
print(f"{'  tracekit extract, full scan':<52} {cf:8.3f}")
print(f"{'  tracekit extract --index':<52} {ci:8.3f}  {cf/ci:.1f}x")
print(f"index: {ixb/1e6:.1f} MB = {100*ixb/setb:.2f}% of the set (flow table {flb/1e6:.1f} MB, {100*flb/setb:.2f}%)")
mem = lambda v: "peak RSS {} MB ({} MB allocated, the rest mapped capture pages)".format(*(int(x) // 1024 for x in v.split()))
print(f"memory: index {mem(sys.argv[15])}; flows over the set {mem(sys.argv[16])}")
PY

# Cold: the page cache dropped before each run (when this machine lets us), as a set of many
# TB is met: the one-host query against the full scan and tcpdump, best of COLD_RUNS (3) runs
# each (this machine's disk is uneven: a single cold run of the query took 0.8 to 2.1 s), the
# write-back of our outputs counted (tcpdump's goes to /dev/null).
if [ -w /proc/sys/vm/drop_caches ]; then
  cold() { runs=${COLD_RUNS:-3} best_prepared "echo 3 > /proc/sys/vm/drop_caches" "$@"; }
  c_ix=$(cold ./target/release/tracekit extract -q --index "$ix" --filter "host $host" -o "$out/ix-query.pcap")
  c_full=$(cold ./target/release/tracekit extract -q --filter "host $host" -o "$out/ix-full.pcap" "$set_dir")
  c_td=$(cold sh -c "for f in $set_dir/*; do tcpdump -r \$f -w - 'host $host' 2>/dev/null; done > /dev/null")
  python3 -c "
ix, full, td = $c_ix, $c_full, $c_td
print(f'cold page cache, host in 0.1% of the flows:')
print(f\"{'  tracekit extract, full scan':<52} {full:8.3f}\")
print(f\"{'  tcpdump -r each file in turn':<52} {td:8.3f}\")
print(f\"{'  tracekit extract --index':<52} {ix:8.3f}  {full/ix:.1f}x the full scan, {td/ix:.1f}x tcpdump\")"
fi
