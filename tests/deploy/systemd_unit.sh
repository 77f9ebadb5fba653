#!/usr/bin/env bash
# The shipped systemd unit (deploy/netagentd.service):
#  - `systemd-analyze verify` finds nothing to say about it (with ExecStart
#    pointed at the binary under test, since it is not installed here);
#  - its exposure (`systemd-analyze security --offline=true`) stays below
#    5.0, the figure docs/operations.md records;
#  - every flag its ExecStart lines (and the commented variants) pass is one
#    netagentd has.
#   tests/deploy/systemd_unit.sh UNIT NETAGENTD
set -euo pipefail
unit="$1"
agent="$(realpath "$2")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0

sed -E "s|^(#? *ExecStart=)[^ ]*/netagentd|\1$agent|" "$unit" >"$work/netagentd.service"
if ! out="$(systemd-analyze verify "$work/netagentd.service" 2>&1)" || [ -n "$out" ]; then
  echo "systemd-analyze verify:"
  echo "$out"
  fail=1
fi

report="$(systemd-analyze security --offline=true "$work/netagentd.service" 2>&1 || true)"
level="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$report")"
echo "exposure: ${level:-?}"
if [ -z "$level" ] || ! awk -v l="$level" 'BEGIN { exit !(l < 5.0) }'; then
  echo "exposure ${level:-unknown} is not below 5.0:"
  grep '✗' <<<"$report" || echo "$report"
  fail=1
fi

known="$("$agent" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u)"
flags="$(grep -E '^#? *ExecStart=' "$unit" | grep -o -- ' --[a-z][a-z-]*' | tr -d ' ' | sort -u)"
[ -n "$flags" ] || { echo "no flags found in ExecStart"; fail=1; }
for f in $flags; do
  grep -qx -- "$f" <<<"$known" || { echo "ExecStart passes $f, which netagentd does not have"; fail=1; }
done
exit "$fail"
