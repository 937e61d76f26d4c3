#!/usr/bin/env bash
# Benchmark: the release profile. Builds tracekit three ways (LTO off with 16 codegen units,
# cargo's default; thin LTO with 4, the project's choice; fat LTO with 1) in their own target
# directories, then times each on the same commands, in turn (bench/ab.sh's way: the builds
# see the same phases of the machine), and prints build time, binary size and median walls.
# Usage: bench/profile.sh   (ROUNDS=N runs per build and command, default 5; needs the inputs
# bench/merge.sh and bench/analyze.sh generate in bench/out)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
for f in small.pcap merge-a.pcap analyze-b.pcap; do
  [ -f "$out/$f" ] || { echo "bench/profile.sh: $out/$f missing: run just bench first" >&2; exit 2; }
done
variants=("off:16" "thin:4" "fat:1")
for v in "${variants[@]}"; do
  lto=${v%%:*} cgu=${v##*:}
  dir=target/profile-$lto-$cgu
  t0=$(date +%s)
  CARGO_TARGET_DIR=$dir CARGO_PROFILE_RELEASE_LTO=$lto CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$cgu \
    cargo build --release --quiet -p tracekit </dev/null
  echo "$v build $(( $(date +%s) - t0 )) s, binary $(stat -c %s "$dir/release/tracekit") bytes"
done
python3 - "${ROUNDS:-5}" "$out" "${variants[@]}" <<'PY'
import statistics as st, subprocess, sys, time

rounds, out, variants = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
commands = {
    "info (1 GB)": ["info", f"{out}/merge-a.pcap"],
    "split --by stream (200 MB)": ["split", "-q", "-o", "/tmp/tk-profile-split", f"{out}/small.pcap"],
    "extract --filter (1 GB)": ["extract", "-q", "--filter", "tcp port 443", "-o", "/tmp/tk-profile.pcap", f"{out}/merge-a.pcap"],
    "anonymize (200 MB)": ["anonymize", "-q", "--key-file", f"{out}/bench.key", "-o", "/tmp/tk-profile-anon.pcap", f"{out}/small.pcap"],
    "analyze (1 GB + 1 GB)": ["analyze", "-q", f"{out}/merge-a.pcap", f"{out}/analyze-b.pcap"],
}
walls = {(c, v): [] for c in commands for v in variants}
for _ in range(rounds):
    for c, args in commands.items():
        for v in variants:
            lto, cgu = v.split(":")
            subprocess.run(["rm", "-rf", "/tmp/tk-profile-split"])
            t0 = time.perf_counter()
            subprocess.run([f"target/profile-{lto}-{cgu}/release/tracekit", *args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls[(c, v)].append(time.perf_counter() - t0)
print(f"{'median wall seconds':<30}" + "".join(f"{'lto ' + v:>14}" for v in variants))
for c in commands:
    base = st.median(walls[(c, "thin:4")])
    print(f"{c:<30}" + "".join(f"{st.median(walls[(c, v)]):9.3f} {st.median(walls[(c, v)]) / base:4.2f}" for v in variants))
print("(each figure: median wall, then its ratio to thin LTO with 4 codegen units)")
PY
