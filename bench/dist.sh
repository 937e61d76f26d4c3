#!/usr/bin/env bash
# Benchmark: tracekit-dist on a three-node Ray cluster on this machine (a head and two workers,
# each its own raylet and object store, one CPU each) against the same command on one machine,
# over a rotated set (default: the 4 GB day of bench/index-day.sh): `info --json`,
# `anonymize` (with --mapping-out), `split --by stream` (with --index; map, shuffle of
# packet places, reduce, finish) and `flows` (the same shuffle). Checks that the outputs are identical, prints the ratio,
# and the driver's own account of where the time goes (plan, joining Ray, tasks, finish).
# Usage: bench/dist.sh [SET_DIR]   (RUNS=N best of N, default 2; ONLY="flows split" runs only
# those of info, anonymize, flows, index, extract, split)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
RUNS=${RUNS:-2}
ONLY=${ONLY:-info anonymize flows index extract split}
want() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
prepare python3 python3
set_dir=${1:-$out/index-day-4g}
[ -d "$set_dir" ] || bash bench/index-day.sh >/dev/null
distenv=target/distenv
if ! "$distenv/bin/python" -c "import ray, wheel" >/dev/null 2>&1; then
  python3 -m venv "$distenv"
  "$distenv/bin/pip" install -q wheel "./dist[test]"
fi
"$distenv/bin/pip" install -q --no-deps --no-build-isolation ./dist
tk=$PWD/target/release/tracekit
work=$(mktemp -d "$out/dist-XXXXXX")
trap 'kill "$cluster_pid" 2>/dev/null; wait "$cluster_pid" 2>/dev/null; rm -rf "$work"' EXIT

# The cluster lives as long as this process (killed at exit).
"$distenv/bin/python" - "$work/address" <<'PY' &
import signal, sys, time
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
for _ in range(2):
    c.add_node(num_cpus=1)
c.wait_for_nodes()
open(sys.argv[1], "w").write(c.address)
signal.signal(signal.SIGTERM, lambda *_: (c.shutdown(), sys.exit(0)))
while True:
    time.sleep(1)
PY
cluster_pid=$!
for _ in $(seq 120); do [ -s "$work/address" ] && break; sleep 0.5; done
address=$(cat "$work/address")
echo "machine: $(nproc) cores; set: $(ls -R "$set_dir" | grep -c '\.pcap') files, $(du -sh "$set_dir" | cut -f1); Ray cluster at $address (3 nodes)"
cat "$set_dir"/* >/dev/null
"$tk" keygen -o "$work/k.key" 2>/dev/null
dist="$distenv/bin/tracekit-dist --address $address --tracekit $tk"
# One line per measured pair: what, one machine's seconds, tracekit-dist's, same output.
rows=$work/rows.tsv
: > "$rows"
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$rows"; }
wheres=$work/where.txt
: > "$wheres"

# A command whose output is its standard output, on one machine and through tracekit-dist.
stdout_pair() {
  local what=$1 args=$2 t1 t2 same
  t1=$(best sh -c "$tk $args > $work/one.out")
  t2=$(best sh -c "rm -rf $work/state; $dist -q --state $work/state $args > $work/many.out")
  cmp -s "$work/one.out" "$work/many.out" && same=yes || same=NO
  row "$what" "$t1" "$t2" "$same"
  # shellcheck disable=SC2086 # the arguments, split into words
  echo "where the time goes ($what): $(rm -rf "$work/state"; $dist --state "$work/state" $args 2>&1 >/dev/null | grep tracekit-dist | tr '\n' ' ')" >> "$wheres"
}

if want info; then stdout_pair "info --json" "info -q --json $set_dir"; fi

if want anonymize; then
  anon() { echo "rm -rf $work/$1 $work/$1.csv $work/state; $2 anonymize -q --key-file $work/k.key -o $work/$1 --mapping-out $work/$1.csv $set_dir"; }
  t_anon=$(best sh -c "$(anon one "$tk")")
  t_anon_d=$(best sh -c "$(anon many "$dist -q --state $work/state")")
  diff -rq "$work/one" "$work/many" >/dev/null && cmp -s "$work/one.csv" "$work/many.csv" && same=yes || same=NO
  row "anonymize --mapping-out" "$t_anon" "$t_anon_d" "$same"
  echo "where the time goes (anonymize): $(sh -c "$(anon many "$dist --state $work/state")" 2>&1 >/dev/null | grep tracekit-dist | tr '\n' ' ')" >> "$wheres"
  rm -rf "$work/one" "$work/many"
fi

if want flows; then stdout_pair flows "flows -q $set_dir"; fi

if want index; then
  idx() { echo "rm -rf $work/$1 $work/state; $2 index -q -o $work/$1 $set_dir"; }
  t_index=$(best sh -c "$(idx ix-one "$tk")")
  t_index_d=$(best sh -c "$(idx ix-many "$dist -q --state $work/state")")
  diff -r "$work/ix-one" "$work/ix-many" >/dev/null && same=yes || same=NO
  row "index" "$t_index" "$t_index_d" "$same"
  echo "where the time goes (index): $(sh -c "$(idx ix-many "$dist --state $work/state")" 2>&1 >/dev/null | grep tracekit-dist | tr '\n' ' ')" >> "$wheres"
  rm -rf "$work/ix-one" "$work/ix-many"
fi

if want extract; then
  # A filter matching one host of the set's 512 (about 0.4% of the packets).
  ext() { echo "rm -f $work/$1 ; rm -rf $work/state; $2 extract -q --filter 'host 203.0.113.13' -o $work/$1 $set_dir"; }
  t_ext=$(best sh -c "$(ext one.pcap "$tk")")
  t_ext_d=$(best sh -c "$(ext many.pcap "$dist -q --state $work/state")")
  cmp -s "$work/one.pcap" "$work/many.pcap" && same=yes || same=NO
  packets=$("$tk" info "$work/one.pcap" | awk '/^Packets:/ {print $2}')
  row "extract --filter ($packets packets)" "$t_ext" "$t_ext_d" "$same"
  echo "where the time goes (extract): $(sh -c "$(ext many.pcap "$dist --state $work/state")" 2>&1 >/dev/null | grep tracekit-dist | tr '\n' ' ')" >> "$wheres"
  rm -f "$work/one.pcap" "$work/many.pcap"
fi

if want split; then
  # The split's outputs (211,594 files) and its state go to a tmpfs: on ext4, files created
  # within a minute or so of deleting as many (the run before's outputs) make the kernel skip every
  # recently deleted inode (ext4's recently_deleted, seen in perf as most of a reduce task's
  # time), which made one run of the same command take from 11 to 40 s. On the tmpfs both
  # sides create their files at the same cost, so the ratio measures tracekit. (The outputs of
  # the run before are removed untimed.)
  shm=$(mktemp -d "${TMPFS:-/dev/shm}/tracekit-bench-XXXXXX")
  trap 'kill "$cluster_pid" 2>/dev/null; wait "$cluster_pid" 2>/dev/null; rm -rf "$work" "$shm"' EXIT
  splits() { echo "$2 split -q --by stream -o $shm/$1 --index $shm/$1.csv $set_dir"; }
  t_split=$(best_prepared "rm -rf $shm/one $shm/one.csv" sh -c "$(splits one "$tk")")
  t_split_d=$(best_prepared "rm -rf $shm/many $shm/many.csv $shm/state" sh -c "$(splits many "$dist -q --state $shm/state")")
  diff -rq "$shm/one" "$shm/many" >/dev/null && cmp -s "$shm/one.csv" "$shm/many.csv" && same=yes || same=NO
  outputs=$(find "$shm/one" -type f | wc -l)
  row "split --by stream --index ($outputs outputs, tmpfs)" "$t_split" "$t_split_d" "$same"
  echo "where the time goes (split): $(rm -rf "$shm/many" "$shm/many.csv" "$shm/state"; sh -c "$(splits many "$dist --state $shm/state")" 2>&1 >/dev/null | grep tracekit-dist | tr '\n' ' ')" >> "$wheres"
  rm -rf "$shm/one" "$shm/many"
fi

# One machine: the tracekit command (two threads); distributed: tracekit-dist on the three
# nodes (one CPU each).
python3 - "$rows" <<'PY'
import sys
print(f"{'command':<52} {'one machine':>11} {'tracekit-dist':>13}  ratio  same output")
for line in open(sys.argv[1]):
    what, one, many, same = line.rstrip("\n").split("\t")
    one, many = float(one), float(many)
    print(f"{what:<52} {one:10.3f}s {many:12.3f}s  {many / one:4.2f}x  {same}")
PY
cat "$wheres"
