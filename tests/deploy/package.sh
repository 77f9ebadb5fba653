#!/usr/bin/env bash
# The Debian package, built from this tree with cpack and unpacked into a
# scratch root (dpkg -x; nothing is installed on the machine):
#  - its control data: name, version, dependencies (each installed here, so
#    the binaries below ran against them), the config as a conffile;
#  - its files: both binaries, the unit naming /usr/bin/netagentd and passing
#    tests/deploy/systemd_unit.sh, the default config, every built-in
#    playbook (each valid for the packaged netctl), the docs;
#  - the packaged (stripped) netagentd starts with the packaged config in a
#    network namespace of its own and serves its socket.
#   tests/deploy/package.sh BUILD_DIR SOURCE_DIR     (root)
set -euo pipefail
build="$1"
src="$2"
work="$(mktemp -d)"
ns="netagent-pkg-$$"
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack"; }
deb="$(ls "$work"/out/netagent_*.deb)"
[ "$(dpkg-deb -f "$deb" Package)" = netagent ] || fail "package name"
dpkg-deb -f "$deb" Version | grep -q . || fail "no version"
depends="$(dpkg-deb -f "$deb" Depends)"
[ -n "$depends" ] || fail "no Depends (dpkg-shlibdeps did not run?)"
# Installed here by name, or provided by an installed package (spdlog's
# shlibs name a virtual package).
provided="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' | awk '$1 == "ii" {
  for (i = 2; i <= NF; i++) { sub(/:.*/, "", $i); if ($i !~ /^[(=<>]/ && $i !~ /[)]$/) print $i } }' |
  tr -d ',' | sort -u)"
for d in $(tr ',' '\n' <<<"$depends" | sed 's/(.*)//; s/|.*//' | tr -d ' '); do
  grep -qx -- "$d" <<<"$provided" || fail "dependency $d is neither installed nor provided here"
done
mkdir "$work/ctrl"
dpkg-deb -e "$deb" "$work/ctrl"
grep -qx /etc/netagent/netagentd.yaml "$work/ctrl/conffiles" || fail "the config is not a conffile"
[ -x "$work/ctrl/postinst" ] || fail "no postinst"

root="$work/root"
dpkg -x "$deb" "$root"
for f in usr/bin/netagentd usr/bin/netctl usr/lib/systemd/system/netagentd.service \
  etc/netagent/netagentd.yaml usr/share/doc/netagent/README.md \
  usr/share/doc/netagent/operations.md usr/share/doc/netagent/examples/prometheus/netagent.rules.yml; do
  [ -e "$root/$f" ] || fail "missing /$f"
done
grep -q '^ExecStart=/usr/bin/netagentd --config /etc/netagent/netagentd.yaml' \
  "$root/usr/lib/systemd/system/netagentd.service" || fail "the unit does not start /usr/bin/netagentd"
grep -q '^Documentation=file:///usr/share/doc/netagent/operations.md' \
  "$root/usr/lib/systemd/system/netagentd.service" || fail "the unit's Documentation= is not the packaged docs"
"$src/tests/deploy/systemd_unit.sh" "$root/usr/lib/systemd/system/netagentd.service" \
  "$root/usr/bin/netagentd" || fail "the packaged unit"

shipped=$(ls "$src"/docs/playbooks/*.yaml | wc -l)
packaged=$(ls "$root"/usr/share/netagent/playbooks/*.yaml | wc -l)
[ "$shipped" -gt 0 ] && [ "$shipped" -eq "$packaged" ] || fail "playbooks: $packaged packaged of $shipped"
for p in "$root"/usr/share/netagent/playbooks/*.yaml; do
  "$root/usr/bin/netctl" playbook validate "$p" >/dev/null || fail "packaged playbook $p"
done
"$root/usr/bin/netctl" --version | grep -q . || fail "netctl --version"

# The packaged agent with the packaged config (flags win for the paths).
ip netns add "$ns"
"$root/usr/bin/netagentd" --config "$root/etc/netagent/netagentd.yaml" --netns "$ns" \
  --socket "$work/agent.sock" --state-dir "$work/state" --pid-file "$work/agent.pid" \
  --bpf-pin-root "/sys/fs/bpf/$ns" --drop-reasons off >"$work/agent.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -e "$work/agent.pid" ] && break; sleep 0.1; done
[ -e "$work/agent.pid" ] || { cat "$work/agent.log"; fail "the packaged agent did not start"; }
"$root/usr/bin/netctl" -t "unix://$work/agent.sock" health | grep -q SERVING || fail "health"
grep -q '"msg"' "$work/agent.log" || fail "the config's log_format json was not applied"
kill "$pid"
wait "$pid" || true
pid=""
rm -rf "/sys/fs/bpf/$ns"
echo "ok: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB, $packaged playbooks, Depends: $depends"
