#!/usr/bin/env bash
# Benchmark: tracekit merge against mergecap in one run, printing ratios.
#  1. two 1 GB captures with interleaved times, to pcap (mergecap -F pcap) and to pcapng;
#  2. 10,000 small captures (a 200 MB capture cut by tracekit split --by count), to pcapng;
#  3. two 1 GB traces of the same traffic whose clocks differ by 1.5 s (the second is the first
#     shifted by editcap, as in bench/analyze.sh): tracekit merge --align auto, which finds the
#     offset, against the anchors' manual route when the offset is already known (editcap -t
#     on one trace, then mergecap), and against tracekit merge --shift with the known offset.
# Usage: bench/merge.sh   (RUNS=N best of N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare mergecap wireshark-common
prepare reordercap wireshark-common
gen() { [ -f "$1" ] || ./target/release/tracekit-bench gen --size "$2" --flows "$3" --seed "$4" -o "$1"; }
gen "$out/merge-a.pcap" 1000000000 50000 1
gen "$out/merge-b.pcap" 1000000000 50000 2
gen "$out/small.pcap" 200000000 20000 3
[ -f "$out/analyze-b.pcap" ] || editcap -t 1.5 "$out/merge-a.pcap" "$out/analyze-b.pcap"
many="$out/merge-10k"
if [ ! -d "$many" ]; then
  packets=$(./target/release/tracekit info --json "$out/small.pcap" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
  ./target/release/tracekit split -q --by "count=$(( (packets + 9999) / 10000 ))" -o "$many" "$out/small.pcap"
fi
nfiles=$(find "$many" -type f | wc -l)
ulimit -n 65536 2>/dev/null || true

# Best of $runs wall-clock seconds; the output file is removed after each run.
best() {
  local target=$1; shift
  local best=""
  for _ in $(seq "$runs"); do
    local t0 t1
    # Start every run with no dirty pages waiting: otherwise whichever tool runs while the
    # previous run's gigabytes are written back is throttled by the kernel.
    sync
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    rm -f "$target"
    local t=$(( t1 - t0 ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  python3 -c "print(f'{$best/1e9:.3f}')"
}
peak() { local target=$1; shift; python3 bench/peak.py "$@"; rm -f "$target"; }

echo "machine: $(nproc) cores; $(mergecap --version | head -1)"
cat "$out/merge-a.pcap" "$out/merge-b.pcap" > /dev/null
o="$out/merged.out"
t_cat=$(best "$o" sh -c "cat $out/merge-a.pcap $out/merge-b.pcap > $o")
t_tk_pcap=$(best "$o" ./target/release/tracekit merge -q --format pcap -o "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
t_mc_pcap=$(best "$o" mergecap -F pcap -w "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
t_tk_ng=$(best "$o" ./target/release/tracekit merge -q -o "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
t_mc_ng=$(best "$o" mergecap -w "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
m_tk=$(peak "$o" ./target/release/tracekit merge -q --format pcap -o "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
m_mc=$(peak "$o" mergecap -F pcap -w "$o" "$out/merge-a.pcap" "$out/merge-b.pcap")
find "$many" -type f -exec cat {} + > /dev/null
t_tk_many=$(best "$o" ./target/release/tracekit merge -q -o "$o" "$many")
t_mc_many=$(best "$o" sh -c "exec mergecap -w $o $many/*")
m_tk_many=$(peak "$o" ./target/release/tracekit merge -q -o "$o" "$many")
m_mc_many=$(peak "$o" sh -c "exec mergecap -w $o $many/*")
b="$out/analyze-b.pcap"
cat "$out/merge-a.pcap" "$b" > /dev/null
t_tk_auto=$(best "$o" ./target/release/tracekit merge -q --align auto --format pcap -o "$o" "$out/merge-a.pcap" "$b")
t_tk_shift=$(best "$o" ./target/release/tracekit merge -q --shift "analyze-b.pcap=-1.5s" --format pcap -o "$o" "$out/merge-a.pcap" "$b")
t_manual=$(best "$o" sh -c "editcap -t -1.5 $b $o.shifted && mergecap -F pcap -w $o $out/merge-a.pcap $o.shifted; rm -f $o.shifted")
m_tk_auto=$(peak "$o" ./target/release/tracekit merge -q --align auto --format pcap -o "$o" "$out/merge-a.pcap" "$b")
found=$(./target/release/tracekit merge -q --align auto --format pcap -o "$o" "$out/merge-a.pcap" "$b" 2>&1 | grep "clock offset" | sed 's/^ *//'); rm -f "$o"
# One 2 GB file whose clock steps back by 5 s halfway (b appended to a, 5 s earlier): what
# reordercap sorts; both outputs must be byte-identical.
stepped="$out/stepped.pcap"
if [ ! -f "$stepped" ]; then
  editcap -t -5 "$out/merge-b.pcap" "$out/b-back.pcap"
  ./target/release/tracekit merge -q --append --format pcap -o "$stepped" "$out/merge-a.pcap" "$out/b-back.pcap"
  rm -f "$out/b-back.pcap"
fi
cat "$stepped" > /dev/null
t_tk_sort=$(best "$o" ./target/release/tracekit merge -q --format pcap -o "$o" "$stepped")
t_rc_sort=$(best "$o" reordercap "$stepped" "$o")
m_tk_sort=$(peak "$o" ./target/release/tracekit merge -q --format pcap -o "$o" "$stepped")
m_rc_sort=$(peak "$o" reordercap "$stepped" "$o")
./target/release/tracekit merge -q --format pcap -o "$o.tk" "$stepped" 2>/dev/null
reordercap "$stepped" "$o.rc" >/dev/null 2>&1
same=$(cmp -s "$o.tk" "$o.rc" && echo "byte-identical" || echo "DIFFERENT")
rm -f "$o.tk" "$o.rc"

python3 - "$t_cat" "$t_tk_pcap" "$t_mc_pcap" "$t_tk_ng" "$t_mc_ng" "$m_tk" "$m_mc" "$t_tk_many" "$t_mc_many" "$m_tk_many" "$m_mc_many" "$nfiles" "$t_tk_auto" "$t_tk_shift" "$t_manual" "$m_tk_auto" "$found" "$t_tk_sort" "$t_rc_sort" "$m_tk_sort" "$m_rc_sort" "$same" <<'PY'
import sys
a = sys.argv[1:]
cat, tkp, mcp, tkn, mcn = map(float, a[0:5])
mtk, mmc = a[5].split(), a[6].split()
tkm, mcm = map(float, a[7:9])
mtkm, mmcm = a[9].split(), a[10].split()
n = a[11]
mb = lambda kb: f"{int(kb) // 1024} MB"
print("\ntwo 1 GB inputs (best of runs, page cache warm; peak RSS total / allocated)")
print(f"  cat a b > out                 {cat:8.3f} s")
print(f"  tracekit merge --format pcap  {tkp:8.3f} s   {mb(mtk[0])} / {mb(mtk[1])}")
print(f"  mergecap -F pcap              {mcp:8.3f} s   {mb(mmc[0])} / {mb(mmc[1])}")
print(f"  tracekit merge (pcapng)       {tkn:8.3f} s")
print(f"  mergecap (pcapng)             {mcn:8.3f} s")
print(f"  ratios: mergecap -F pcap / tracekit = {mcp/tkp:.1f}x, pcapng {mcn/tkn:.1f}x; tracekit / cat = {tkp/cat:.2f}x")
print(f"\n{n} small inputs to pcapng")
print(f"  tracekit merge                {tkm:8.3f} s   {mb(mtkm[0])} / {mb(mtkm[1])}")
print(f"  mergecap                      {mcm:8.3f} s   {mb(mmcm[0])} / {mb(mmcm[1])}")
print(f"  ratio: mergecap / tracekit = {mcm/tkm:.1f}x")
auto, shift, manual = map(float, a[12:15])
mauto = a[15].split()
print("\ntwo 1 GB traces of the same traffic, clocks 1.5 s apart, to pcap")
print(f"  tracekit merge --align auto   {auto:8.3f} s   {mb(mauto[0])} / {mb(mauto[1])}")
print(f"  tracekit merge --shift (known){shift:8.3f} s")
print(f"  editcap -t + mergecap (known) {manual:8.3f} s")
print(f"  ratios: manual route / tracekit --align auto = {manual/auto:.1f}x; alignment costs {auto/shift:.2f}x a known shift")
print(f"  {a[16]}")
tks, rcs = map(float, a[17:19])
mtks, mrcs = a[19].split(), a[20].split()
print("\none 2 GB file whose clock steps back 5 s halfway, sorted (outputs " + a[21] + ")")
print(f"  tracekit merge -o sorted      {tks:8.3f} s   {mb(mtks[0])} / {mb(mtks[1])}")
print(f"  reordercap                    {rcs:8.3f} s   {mb(mrcs[0])} / {mb(mrcs[1])}")
print(f"  ratio: reordercap / tracekit = {rcs/tks:.1f}x")
PY
