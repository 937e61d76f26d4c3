#!/usr/bin/env bash
# A/B timing of two builds of the same command, for changes smaller than this VM's noise (runs
# of one binary differ by up to 1.5x here, mostly in system time). The two binaries run in turn,
# ROUNDS times each, so both see the same phases of the machine; prints min and median wall,
# user and system seconds of each, and the ratio of the medians.
# Usage: bench/ab.sh OLD_BINARY NEW_BINARY ARGS...   (ROUNDS=N, default 8)
# e.g.   bench/ab.sh /tmp/base/release/tracekit target/release/tracekit \
#            analyze -q bench/out/merge-a.pcap bench/out/analyze-b.pcap
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,8p "$0" >&2; exit 2; }
exec python3 - "${ROUNDS:-8}" "$@" <<'PY'
import resource, statistics as st, subprocess, sys, time

rounds, old, new, args = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
runs = {"old": [], "new": []}
for _ in range(rounds):
    for side, binary in (("old", old), ("new", new)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs[side].append((wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
for side, r in runs.items():
    wall, user, system = zip(*r)
    print(f"{side}: wall min {min(wall):.3f} s, median {st.median(wall):.3f} s; "
          f"user median {st.median(user):.3f} s; system median {st.median(system):.3f} s ({len(r)} runs)")
ratio = st.median(w for w, _, _ in runs["new"]) / st.median(w for w, _, _ in runs["old"])
print(f"new/old median wall: {ratio:.3f}")
PY
