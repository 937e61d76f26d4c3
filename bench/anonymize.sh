#!/usr/bin/env bash
# Benchmark: tracekit anonymize against tcprewrite (Debian package tcpreplay) on the generated
# 2 GB capture, in one run, with ratios. tcprewrite --seed rewrites IPv4/IPv6 addresses with an
# unkeyed hash and fixes checksums; --pnat maps one prefix; tracekit does far more per packet
# (Crypto-PAn, MACs, ARP, ICMP quotes, payload zeroing, checksum repair).
# Usage: bench/anonymize.sh   (RUNS=N best of N, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare tcprewrite tcpreplay
f="$out/bench.pcap"
[ -f "$f" ] || ./target/release/tracekit-bench gen --size 2000000000 --seed 7 -o "$f"
key="$out/bench.key"
[ -f "$key" ] || ./target/release/tracekit keygen -o "$key"
# One table with input and output on this disk, one on tmpfs (CPU-bound: no disk in the way).
table() {
  local f=$1 o=$2
  cat "$f" > /dev/null
  timed() { sync; rm -f "$o"; best "$@"; }
  t_cp=$(timed cp "$f" "$o")
  t_tk=$(timed ./target/release/tracekit anonymize -q --key-file "$key" -o "$o" "$f")
  t_tk_keep=$(timed ./target/release/tracekit anonymize -q --payload keep --key-file "$key" -o "$o" "$f")
  t_seed=$(timed sh -c "tcprewrite --seed=42 --fixcsum -i $f -o $o 2>/dev/null")
  t_pnat=$(timed sh -c "tcprewrite --pnat=10.0.0.0/8:11.0.0.0/8,192.0.2.0/24:203.0.113.0/24 --fixcsum -i $f -o $o 2>/dev/null")
  rm -f "$o"
  m_tk=$(python3 bench/peak.py ./target/release/tracekit anonymize -q --key-file "$key" -o "$o" "$f"); rm -f "$o"
  m_seed=$(python3 bench/peak.py sh -c "exec tcprewrite --seed=42 --fixcsum -i $f -o $o 2>/dev/null"); rm -f "$o"
  python3 - "$f" "$t_cp" "$t_tk" "$t_tk_keep" "$t_seed" "$t_pnat" "$m_tk" "$m_seed" <<'PY'
import os, sys
f = sys.argv[1]
cp, tk, keep, seed, pnat = map(float, sys.argv[2:7])
(tk_total, tk_anon), (seed_total, seed_anon) = ([int(v) // 1024 for v in x.split()] for x in sys.argv[7:9])
gb = os.path.getsize(f) / 1e9
print(f"\n{f}: {gb:.2f} GB (best of runs, page cache warm, output beside the input)")
print(f"{'command':<52} {'seconds':>8} {'GB/s':>6} {'seed/x':>7}")
for name, t in [("cp", cp), ("tracekit anonymize (payload zero, default)", tk),
                ("tracekit anonymize --payload keep", keep),
                ("tcprewrite --seed=42 --fixcsum", seed), ("tcprewrite --pnat=… --fixcsum", pnat)]:
    print(f"{name:<52} {t:8.3f} {gb/t:6.2f} {seed/t:6.1f}x")
print(f"peak RSS: tracekit {tk_total} MB ({tk_anon} MB allocated, the rest mapped input), tcprewrite --seed {seed_total} MB")
PY
}
table "$f" "$out/anon.out"
if [ -d /dev/shm ] && [ "$(df --output=avail -B1 /dev/shm | tail -1)" -gt $(( 3 * $(stat -c %s "$f") )) ]; then
  cp "$f" /dev/shm/tracekit-bench.pcap
  table /dev/shm/tracekit-bench.pcap /dev/shm/tracekit-anon.out
  rm -f /dev/shm/tracekit-bench.pcap /dev/shm/tracekit-anon.out
fi
