#!/usr/bin/env bash
# Runs every vxflow test: unit tests, BPF_PROG_TEST_RUN tests of the real
# classifier, and end-to-end tests in network namespaces against real traffic.
# Installs what it needs first (scripts/setup.sh). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A full run rebuilds little it can reuse, and incremental state would add
# about 1 GB to target/.
export CARGO_INCREMENTAL=0
# A run takes about 5.5 GB of disk at its peak (target/ near 3, the fuzz
# build 2); a linker killed by SIGBUS means the disk filled. Say what was
# free at the start and when a step fails.
echo "== disk free here: $(df -h --output=avail . | tail -n 1 | tr -d ' ')" >&2
trap 'echo "a step failed; disk free here: $(df -h --output=avail . | tail -n 1 | tr -d " ")" >&2' ERR

echo "== format and lints" >&2
cargo fmt --all --check
# probe-ebpf builds for the bpf target only, so it is linted on its own.
cargo clippy --workspace --exclude vxflow-ebpf --all-targets --quiet -- -D warnings
cargo +nightly clippy -p vxflow-ebpf --target bpfel-unknown-none -Z build-std=core --quiet -- -D warnings

echo "== build" >&2
cargo build --workspace --exclude vxflow-ebpf --all-targets --quiet
# The scale tests run the optimised binary, as operators do; the package
# step below reuses this build.
cargo build --release -p vxflow --quiet

echo "== tests" >&2
# Root-only tests are #[ignore]d so a contributor's plain `cargo test` passes
# without root; here every one of them runs.
cargo test --workspace --exclude vxflow-ebpf --exclude vxflow-tests --quiet -- --include-ignored --test-threads 2
# End to end, one test at a time: on a 2-core machine two traffic tests at
# once can starve a veth's receive ring, and a packet dropped after TC makes
# the link counters an inexact reference (the tests check for drops).
cargo test -p vxflow-tests --quiet -- --include-ignored --test-threads 1

echo "== package" >&2
scripts/package-test.sh

echo "== fuzzing (30 s a target)" >&2
for target in config cache capture; do
  log=$(mktemp)
  # A build failure or a crash both make cargo fuzz exit non-zero.
  if ! (cd fuzz && cargo +nightly fuzz run "$target" -O -- -max_total_time=30) >"$log" 2>&1; then
    grep -v '^warning: vxflow@' "$log" | tail -n 40 >&2
    echo "fuzz target $target failed; a crashing input, if any, is in fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  grep -E '^Done' "$log" | sed "s/^/  $target: /" >&2
  rm -f "$log"
done

echo "== leftovers" >&2
# Every test removes what it made; fail loudly if something is left behind.
left=$(ip netns list | grep -E '^vxt[0-9]' || true)
if [ -n "$left" ]; then
  echo "network namespaces left behind:" >&2
  echo "$left" >&2
  exit 1
fi
left=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'vxt[0-9]*' -newer Cargo.toml 2>/dev/null || true)
if [ -n "$left" ]; then
  echo "temporary files left behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "all tests passed" >&2
