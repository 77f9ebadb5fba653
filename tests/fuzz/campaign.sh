#!/usr/bin/env bash
# A long fuzzing campaign: each harness in turn, one process, nice 19, for a
# fixed number of executions, from the committed corpus plus what earlier
# campaigns in the same directory found. Prints one line per harness:
#   harness executions seconds exec/s corpus-files corpus-bytes peak-rss-MB result
#
#   tests/fuzz/campaign.sh [-r RUNS] [-d DIR] [HARNESS...]   (default: all)
#
# Needs the fuzz tree (scripts/lib.sh build_fuzz, or NETAGENT_FUZZ_BUILD).
# Crashes land in DIR/<harness>/artifacts; the harness stops at the first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${NETAGENT_FUZZ_BUILD:-$root/build-fuzz}"
runs=10000000
dir="$build/campaign"
while getopts "r:d:" opt; do
  case $opt in
    r) runs=$OPTARG ;;
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
  dict=()
  [ -f "$root/tests/fuzz/dict/$h.dict" ] && dict=("-dict=$root/tests/fuzz/dict/$h.dict")
  start=$(date +%s)
  result=ok
  nice -n 19 "$build/tests/fuzz/fuzz_$h" -runs="$runs" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" \
    "$work/corpus" "$root/tests/fuzz/corpus/$h" >"$work/log" 2>&1 || result="FAILED (see $work/log)"
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log" | tail -1)
  files=$(find "$work/corpus" "$root/tests/fuzz/corpus/$h" -type f | wc -l)
  bytes=$(find "$work/corpus" "$root/tests/fuzz/corpus/$h" -type f -printf '%s\n' |
    awk '{s += $1} END {print s + 0}')
  printf '%-17s %10s %6s %7s %6s %9s %5s %s\n' "$h" "${execs:-?}" "$secs" \
    "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$files" "$bytes" "${rss:-?}" "$result"
done
