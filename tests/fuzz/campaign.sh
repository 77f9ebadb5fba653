#!/usr/bin/env bash
# A long fuzzing campaign: each harness in turn, one process, nice 19, until
# it has run RUNS executions in all, from the committed corpus plus what
# earlier runs in the same directory found. A campaign may be cut into
# parts (-t SECONDS bounds each harness's part): DIR/<harness>/executions
# keeps the running total, and the next part goes on from there. Prints
# one line per harness:
#   harness executions(total) seconds(this part) exec/s corpus-files corpus-bytes peak-rss-MB result
#
#   tests/fuzz/campaign.sh [-r RUNS] [-t SECONDS] [-d DIR] [HARNESS...]   (default: all)
#
# Needs the fuzz tree (scripts/lib.sh build_fuzz, or NETAGENT_FUZZ_BUILD).
# Crashes land in DIR/<harness>/artifacts; the harness stops at the first,
# and its total starts again from 0 (the code changed when it is fixed).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${NETAGENT_FUZZ_BUILD:-$root/build-fuzz}"
runs=10000000
seconds=0
dir="$build/campaign"
while getopts "r:t:d:" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    t) seconds=$OPTARG ;;
    d) dir=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for c in "$root"/tests/fuzz/corpus/*/; do harnesses+=("$(basename "$c")"); done
fi
symbolizer="$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)"
export ASAN_OPTIONS="detect_leaks=1:external_symbolizer_path=$symbolizer"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for h in "${harnesses[@]}"; do
  work="$dir/$h"
  mkdir -p "$work/corpus" "$work/artifacts"
  done_before=$(cat "$work/executions" 2>/dev/null || echo 0)
  left=$((runs - done_before))
  if [ "$left" -le 0 ]; then
    printf '%-17s %10s %6s %7s %6s %9s %5s %s\n' "$h" "$done_before" 0 - - - - "ok (done before)"
    continue
  fi
  dict=()
  [ -f "$root/tests/fuzz/dict/$h.dict" ] && dict=("-dict=$root/tests/fuzz/dict/$h.dict")
  bound=()
  [ "$seconds" -gt 0 ] && bound=("-max_total_time=$seconds")
  start=$(date +%s)
  result=ok
  rc=0
  nice -n 19 "$build/tests/fuzz/fuzz_$h" -runs="$left" "${bound[@]}" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" \
    "$work/corpus" "$root/tests/fuzz/corpus/$h" >"$work/log" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    # A timeout whose input replays in time was a pause (SIGSTOP while
    # benchmarks run counts as the unit's time), not a hang: set aside.
    for t in $(find "$work/artifacts" -type f -name 'timeout-*' -newermt "@$start"); do
      if "$build/tests/fuzz/fuzz_$h" -timeout=20 -runs=1 "$t" >/dev/null 2>&1; then
        mv "$t" "$work/artifacts/paused-${t##*/}"
      fi
    done
    if find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
      -o -name 'leak-*' \) -newermt "@$start" | grep -q .; then
      result="FAILED (see $work/log)"
    else  # stopped from outside: what it ran still counts
      result="stopped"
      execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$work/log" | tail -1)
    fi
  fi
  if [ "$result" = "${result#FAILED}" ]; then
    total=$((done_before + ${execs:-0}))
  else
    total=0  # a crash: the count starts again once it is fixed
  fi
  echo "$total" >"$work/executions"
  [ "$result" != "${result#FAILED}" ] || [ "$total" -ge "$runs" ] || result="$result, part (goes on next time)"
  files=$(find "$work/corpus" "$root/tests/fuzz/corpus/$h" -type f | wc -l)
  bytes=$(find "$work/corpus" "$root/tests/fuzz/corpus/$h" -type f -printf '%s\n' |
    awk '{s += $1} END {print s + 0}')
  printf '%-17s %10s %6s %7s %6s %9s %5s %s\n' "$h" "$total" "$secs" \
    "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$files" "$bytes" "${rss:-?}" "$result"
done
