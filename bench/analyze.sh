#!/usr/bin/env bash
# Benchmark: tracekit analyze on two 1 GB traces of the same traffic, against tracekit info on
# the same two files (the issue's yardstick: analyze ≤ 2× info) and against tshark's TCP
# conversation table over both (what an analyst would start from), in one run, with ratios.
# The second trace is a copy of the first shifted by 1.5 s with editcap, so every connection is
# found in both and compared field by field (the heaviest case).
# Two pairs: payloads of random bytes, and payloads as TLS (a Client Hello and a Server Hello
# with random values, then application-data records), which is what real captures mostly carry
# and which takes analyze's TLS paths.
# A third pair is a SYN scan (every packet an unanswered SYN: a million connections per 100
# MB), the worst case for memory: analyze must stay short and small there too. A fourth, a scan
# of closed ports (every SYN answered by a RST/ACK: 600,000 connections per 100 MB).
# Under each pair: one analyze run step by step, and what reading the pair costs step by step
# (walk, dissection, a plain per-connection hash map, analyze's table) against the walk.
# With OLD=BINARY (an earlier build of tracekit), each pair also runs side by side with it:
# both binaries in turn (bench/ab.sh, ROUNDS=N, default 8), their peak memory (the highest of
# three runs each), and whether the two reports (text and --json) are the same bytes.
# Usage: bench/analyze.sh   (RUNS=N best of N, default 3; tshark runs once; BIG=1 adds the
# 10 GB pair; OLD=BINARY adds the side-by-side)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare editcap wireshark-common
echo "machine: $(nproc) cores; $(tshark --version | head -1)"

# one_pair LABEL A B: times info, analyze (text and JSON) and tshark on A and B; prints a table.
one_pair() {
  local label=$1 a=$2 b=$3
  cat "$a" "$b" > /dev/null
  local t_info t_an t_an_json mem mems t_tshark summary
  t_info=$(best ./target/release/tracekit info "$a" "$b")
  t_an=$(best ./target/release/tracekit analyze -q "$a" "$b")
  t_an_json=$(best ./target/release/tracekit analyze -q --json "$a" "$b")
  # The peak moves with the threads' timing: three runs, the highest taken.
  local runs_mem
  runs_mem=$(for _ in 1 2 3; do python3 bench/peak.py ./target/release/tracekit analyze -q "$a" "$b"; done)
  mem=$(echo "$runs_mem" | sort -n | tail -1)
  mems=$(echo "$runs_mem" | awk '{printf "%s%d", (NR > 1 ? ", " : ""), $1 / 1024}')
  t_tshark=$(runs=1 best sh -c "tshark -n -q -r $a -z conv,tcp & tshark -n -q -r $b -z conv,tcp & wait")
  summary=$(./target/release/tracekit analyze -q "$a" "$b" | sed -n 3,4p)
  # Where one run's time went (analyze --timings), printed under the table.
  local steps
  steps=$(./target/release/tracekit analyze -q --timings "$a" "$b" 2>&1 >/dev/null | sed 's/^tracekit analyze: */  /')
  python3 - "$label" "$t_info" "$t_an" "$t_an_json" "$t_tshark" "$mem" "$summary" "$mems" <<'PY'
import sys
label = sys.argv[1]
info, an, js, ts = map(float, sys.argv[2:6])
peak_total, peak_anon = sys.argv[6].split()
print()
print(sys.argv[7])
print(f"{label:<40} {'seconds':>8} {'vs info':>8} {'tshark/x':>9}")
for name, t in [("tracekit info", info), ("tracekit analyze (text)", an),
                ("tracekit analyze --json", js), ("tshark -z conv,tcp (both, parallel)", ts)]:
    print(f"{name:<40} {t:8.3f} {t/info:7.1f}x {ts/t:8.1f}x")
print(f"analyze peak RSS {int(peak_total)//1024} MB (the highest of three runs: {sys.argv[8]} MB),"
      f" of which allocated {int(peak_anon)//1024} MB")
# What a connection costs: the peak over every connection of both traces (each trace holds its
# own), from the summary's "connections in both traces: N …; in one trace only: X …, Y …".
import re
m = re.search(r"in both traces: (\d+).*one trace only: (\d+) \S+ side, (\d+)", sys.argv[7])
if m:
    both, only_a, only_b = map(int, m.groups())
    held = 2 * both + only_a + only_b
    print(f"per connection held (both traces, {held} in all): {int(peak_total) * 1024 // held} bytes of peak RSS")
PY
  echo "one analyze run, step by step (--timings):"
  echo "$steps"
  # What reading costs before any comparison, against the walk info does: the room the
  # 2x-info goal leaves.
  echo "reading alone, step by step (tracekit-bench floor):"
  ./target/release/tracekit-bench floor "$a" "$b" | sed 's/^/  /'
  if [ -n "${OLD:-}" ]; then
    against_old "$a" "$b"
  fi
}

# against_old A B: this build and $OLD on the pair, in turn; their peaks; their reports compared.
against_old() {
  local a=$1 b=$2 new=./target/release/tracekit peaks_old peaks_new same_text same_json
  echo "side by side with $OLD:"
  ROUNDS=${ROUNDS:-8} bench/ab.sh "$OLD" "$new" analyze -q "$a" "$b" | sed 's/^/  /'
  peaks_old=$(for _ in 1 2 3; do python3 bench/peak.py "$OLD" analyze -q "$a" "$b" | awk '{print int($1 / 1024)}'; done | sort -n | tr '\n' ' ')
  peaks_new=$(for _ in 1 2 3; do python3 bench/peak.py "$new" analyze -q "$a" "$b" | awk '{print int($1 / 1024)}'; done | sort -n | tr '\n' ' ')
  echo "  peak RSS, MB (three runs each): old ${peaks_old}; new ${peaks_new}"
  cmp -s <("$OLD" analyze -q "$a" "$b") <("$new" analyze -q "$a" "$b") && same_text=yes || same_text=NO
  cmp -s <("$OLD" analyze -q --json "$a" "$b") <("$new" analyze -q --json "$a" "$b") && same_json=yes || same_json=NO
  echo "  same report: text $same_text, --json $same_json"
}

a="$out/merge-a.pcap"
b="$out/analyze-b.pcap"
[ -f "$a" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 50000 --seed 1 -o "$a"
[ -f "$b" ] || editcap -t 1.5 "$a" "$b"
one_pair "two 1 GB traces, random payloads" "$a" "$b"

ta="$out/tls-a.pcap"
tb="$out/tls-b.pcap"
[ -f "$ta" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 50000 --seed 1 --tls -o "$ta"
[ -f "$tb" ] || editcap -t 1.5 "$ta" "$tb"
one_pair "two 1 GB traces, TLS payloads" "$ta" "$tb"

sa="$out/scan-a.pcap"
sb="$out/scan-b.pcap"
[ -f "$sa" ] || ./target/release/tracekit-bench gen --size 100000000 --flows 1000 --seed 3 --scan -o "$sa"
[ -f "$sb" ] || editcap -t 1.5 "$sa" "$sb"
one_pair "two 100 MB traces of a SYN scan" "$sa" "$sb"

ca="$out/closed-a.pcap"
cb="$out/closed-b.pcap"
[ -f "$ca" ] || ./target/release/tracekit-bench gen --size 100000000 --flows 1000 --seed 3 --scan-closed -o "$ca"
[ -f "$cb" ] || editcap -t 1.5 "$ca" "$cb"
one_pair "two 100 MB traces of a scan of closed ports" "$ca" "$cb"

# BIG=1: a 10 GB pair of ordinary traffic (two 5 GB traces; 10 GB of disk), for its memory.
if [ "${BIG:-0}" = 1 ]; then
  ba="$out/big-a.pcap"
  bb="$out/big-b.pcap"
  [ -f "$ba" ] || ./target/release/tracekit-bench gen --size 5000000000 --flows 250000 --seed 1 -o "$ba"
  [ -f "$bb" ] || editcap -t 1.5 "$ba" "$bb"
  RUNS=1 one_pair "two 5 GB traces, random payloads (a 10 GB pair)" "$ba" "$bb"
fi
