#!/usr/bin/env bash
# Runs the whole suite (both ctest trees, as scripts/test does) RUNS times in a
# row under CPU load: one busy loop per CPU, started here and ended here by
# pid. Stops at the first failing run and keeps its log. Prints one line per
# run: run, seconds, result.
#
#   tests/stress.sh [-n RUNS] [-l LOOPS]      (default 20 runs, one loop per CPU)
#
# Uses the trees scripts/test built (NETAGENT_BUILD, NETAGENT_FUZZ_BUILD or
# build/ and build-fuzz/ under the repository root). Needs root, like the suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${NETAGENT_BUILD:-$root/build}"
fuzz="${NETAGENT_FUZZ_BUILD:-$root/build-fuzz}"
runs=20
loops=$(nproc)
while getopts "n:l:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    l) loops=$OPTARG ;;
    *) exit 2 ;;
  esac
done
logdir=$(mktemp -d /tmp/netagent-stress.XXXXXX)
busy=()
stop_load() {
  for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_load EXIT
for _ in $(seq "$loops"); do
  (while :; do :; done) &
  busy+=($!)
done
echo "# $runs runs, $loops busy loops (pids ${busy[*]}), logs in $logdir"
for i in $(seq "$runs"); do
  start=$(date +%s)
  log="$logdir/run$i.log"
  result=ok
  { (cd "$build" && ctest --output-on-failure --timeout 300 -j "$(nproc)") &&
    (cd "$fuzz" && ctest --output-on-failure -j "$(nproc)"); } >"$log" 2>&1 || result=FAILED
  printf 'run %2d %5ss %s\n' "$i" "$(($(date +%s) - start))" "$result"
  if [ "$result" != ok ]; then
    grep -E '^\s*[0-9]+ - |Failed|\*\*\*' "$log" | tail -20
    echo "# log: $log"
    exit 1
  fi
  rm -f "$log"
done
echo "# all $runs runs passed"
