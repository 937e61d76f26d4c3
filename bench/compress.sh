#!/usr/bin/env bash
# Benchmark: compressed output (issue: `.gz`/`.zst` by name, --compress). A 1 GB capture
# merged to a plain file, to .gz and to .zst, against mergecap piped into gzip and into zstd
# (mergecap 4.0 does not compress), and gzip/zstd alone over the plain output: seconds,
# sizes, ratios, and the bytes checked equal once decompressed.
# Usage: bench/compress.sh   (RUNS=N best of N, default 1: gzip takes most of a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
prepare mergecap wireshark-common
command -v zstd >/dev/null || { echo "zstd missing: apt-get install zstd" >&2; exit 2; }
runs=${RUNS:-1}
input="$out/merge-a.pcap"
[ -f "$input" ] || ./target/release/tracekit-bench gen --size 1000000000 --flows 100000 --seed 1 -o "$input"
cat "$input" > /dev/null
d="$out/compress"; mkdir -p "$d"
t_plain=$(best ./target/release/tracekit merge -q -o "$d/plain.pcap" "$input")
t_gz=$(best ./target/release/tracekit merge -q -o "$d/t.pcap.gz" "$input")
t_zst=$(best ./target/release/tracekit merge -q -o "$d/t.pcap.zst" "$input")
t_mc_gz=$(best sh -c "mergecap -F pcap -w - '$input' | gzip -6 > '$d/m.pcap.gz'")
t_mc_zst=$(best sh -c "mergecap -F pcap -w - '$input' | zstd -q -3 -T0 > '$d/m.pcap.zst'")
t_gzip=$(best sh -c "gzip -6 -c '$d/plain.pcap' > '$d/g.pcap.gz'")
t_zstd=$(best sh -c "zstd -q -3 -T0 -c '$d/plain.pcap' > '$d/z.pcap.zst'")
# split into chunks: plain, and every output compressed.
rm -rf "$d/split-"*
t_split=$(best sh -c "rm -rf '$d/split-plain' && ./target/release/tracekit split -q --by count=100000 -o '$d/split-plain' '$input'")
t_split_gz=$(best sh -c "rm -rf '$d/split-gz' && ./target/release/tracekit split -q --by count=100000 --compress gzip -o '$d/split-gz' '$input'")
t_split_zst=$(best sh -c "rm -rf '$d/split-zst' && ./target/release/tracekit split -q --by count=100000 --compress zstd -o '$d/split-zst' '$input'")
gzip -dc "$d/t.pcap.gz" | cmp -s - "$d/plain.pcap" && gsame=yes || gsame=NO
zstd -qdc "$d/t.pcap.zst" | cmp -s - "$d/plain.pcap" && zsame=yes || zsame=NO
size() { stat -c %s "$1"; }
echo "machine: $(nproc) cores; input: $(size "$input") bytes"
python3 - "$t_plain" "$t_gz" "$t_zst" "$t_mc_gz" "$t_mc_zst" "$t_gzip" "$t_zstd" \
  "$(size "$d/plain.pcap")" "$(size "$d/t.pcap.gz")" "$(size "$d/t.pcap.zst")" \
  "$(size "$d/m.pcap.gz")" "$(size "$d/m.pcap.zst")" "$gsame" "$zsame" \
  "$t_split" "$t_split_gz" "$t_split_zst" <<'PY'
import sys
p, gz, zst, mgz, mzst, g, z = map(float, sys.argv[1:8])
sp, sgz, szst, smgz, smzst = map(int, sys.argv[8:13])
print(f"{'':<46} {'seconds':>8} {'bytes':>12}")
print(f"{'tracekit merge -o plain.pcap':<46} {p:8.3f} {sp:12d}")
print(f"{'tracekit merge -o out.pcap.gz':<46} {gz:8.3f} {sgz:12d}  {gz/p:.1f}x plain; {mgz/gz:.2f}x faster than mergecap | gzip")
print(f"{'mergecap -w - | gzip -6':<46} {mgz:8.3f} {smgz:12d}")
print(f"{'gzip -6 of the plain output alone':<46} {g:8.3f}")
print(f"{'tracekit merge -o out.pcap.zst':<46} {zst:8.3f} {szst:12d}  {zst/p:.1f}x plain; {mzst/zst:.2f}x faster than mergecap | zstd")
print(f"{'mergecap -w - | zstd -3 -T0':<46} {mzst:8.3f} {smzst:12d}")
print(f"{'zstd -3 -T0 of the plain output alone':<46} {z:8.3f}")
print(f"decompressed equal to the plain output: gzip {sys.argv[13]}, zstd {sys.argv[14]}")
sp_, sg, sz = map(float, sys.argv[15:18])
print(f"{'tracekit split --by count=100000 (plain)':<46} {sp_:8.3f}")
print(f"{'  --compress gzip':<46} {sg:8.3f}  {sg/sp_:.1f}x plain ({g/sg:.2f}x faster than gzip -6 of the whole alone)")
print(f"{'  --compress zstd':<46} {sz:8.3f}  {sz/sp_:.1f}x plain")
PY
