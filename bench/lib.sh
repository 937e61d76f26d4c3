# Shared by the benchmark scripts (sourced): best of $runs wall-clock seconds of a command.
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
