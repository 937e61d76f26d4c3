# Shared by the benchmark scripts (sourced after `cd` to the repository).

# Best-of count, output directory and release binaries; `prepare TOOL PACKAGE` also checks
# that the peer tool is installed.
prepare() {
  runs=${RUNS:-3}
  out=bench/out
  mkdir -p "$out"
  cargo build --release --quiet -p tracekit -p tracekit-bench
  command -v "$1" >/dev/null || { echo "$1 missing: apt-get install $2" >&2; exit 2; }
}

# Best of $runs wall-clock seconds of a command.
best() {
  local best=""
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    local t=$(( t1 - t0 ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  python3 -c "print(f'{$best/1e9:.3f}')"
}

# best_prepared PREP CMD...: like `best`, with the shell command PREP run untimed before each
# run and the file system synced before the clock starts and before it stops (for commands
# that create many files, whose write-back would otherwise fall into the next run's time).
best_prepared() {
  local prep=$1
  shift
  local best=""
  for _ in $(seq "$runs"); do
    sh -c "$prep" >/dev/null 2>&1 || true
    sync
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    sync
    t1=$(date +%s%N)
    local t=$(( t1 - t0 ))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
  done
  python3 -c "print(f'{$best/1e9:.3f}')"
}
