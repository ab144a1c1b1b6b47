#!/usr/bin/env bash
# Builds the .deb (cargo deb), installs it with dpkg, checks what it put on
# the machine and that the installed vxflow runs (in a network namespace of
# its own), then purges it. Needs root; run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[package]\033[0m %s\n' "$*" >&2; }
fail() { echo "package test: $*" >&2; exit 1; }

if dpkg-query -W -f='${Status}' vxflow 2>/dev/null | grep -q "install ok installed"; then
  fail "a vxflow package is installed already; this test installs and purges its own (dpkg --purge vxflow first)"
fi

log "building the .deb"
build_log=$(mktemp)
if ! cargo deb -p vxflow >"$build_log" 2>&1; then
  grep -v '^warning: vxflow@' "$build_log" | tail -n 30 >&2
  fail "cargo deb failed"
fi
deb=$(tail -n 1 "$build_log")
rm -f "$build_log"
[ -f "$deb" ] || fail "cargo deb made no package"
ns="vxt$$-deb"
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  dpkg --purge vxflow >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "installing $(basename "$deb")"
dpkg -i "$deb" >/dev/null
for f in /usr/bin/vxflow /usr/lib/systemd/system/vxflow.service /etc/vxflow/vxflow.toml /usr/share/doc/vxflow/README.md; do
  [ -e "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' vxflow | grep -q /etc/vxflow/vxflow.toml || fail "the config is not a conffile"
/usr/bin/vxflow --version | grep -q "^vxflow " || fail "the installed binary does not run"
/usr/bin/vxflow check-config --quiet /etc/vxflow/vxflow.toml || fail "the installed config does not validate"
out=$(systemd-analyze verify /usr/lib/systemd/system/vxflow.service 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"

log "running the installed vxflow in namespace $ns"
ip netns add "$ns"
ip -n "$ns" link add v0 type veth peer name v1
ip -n "$ns" link set lo up
ip -n "$ns" link set v0 up
ip -n "$ns" link set v1 up
err=$(mktemp)
ip netns exec "$ns" /usr/bin/vxflow run -i v0 --no-control --no-metrics --poll-interval 100ms >/dev/null 2>"$err" &
pid=$!
for _ in $(seq 50); do grep -q "vxflow running" "$err" && break; sleep 0.1; done
grep -q 'attached=\["v0"\]' "$err" || { cat "$err" >&2; fail "the installed vxflow did not attach to v0"; }
kill -TERM "$pid"
wait "$pid" || { cat "$err" >&2; fail "the installed vxflow did not exit cleanly"; }
rm -f "$err"

log "purging"
dpkg --purge vxflow >/dev/null
for f in /usr/bin/vxflow /usr/lib/systemd/system/vxflow.service /etc/vxflow/vxflow.toml; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
log "the .deb installs, runs and purges cleanly"
