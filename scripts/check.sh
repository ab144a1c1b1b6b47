#!/usr/bin/env bash
# The quick loop while changing code, without root: format, both clippy
# passes, and every test that needs no root. Root-only tests are marked
# #[ignore = "needs root: ..."] and skipped here; scripts/test.sh runs them
# all. Needs the toolchains scripts/setup.sh installs (run it once as root).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo bpf-linker; do
  if ! command -v "$tool" >/dev/null; then
    echo "check.sh: $tool not found; run scripts/setup.sh once (as root) first" >&2
    exit 1
  fi
done

echo "== format" >&2
cargo fmt --all --check
echo "== clippy (userspace, then the eBPF crate for its own target)" >&2
cargo clippy --workspace --exclude vxflow-ebpf --all-targets --quiet -- -D warnings
cargo +nightly clippy -p vxflow-ebpf --target bpfel-unknown-none -Z build-std=core --quiet -- -D warnings
echo "== tests that need no root" >&2
cargo test --workspace --exclude vxflow-ebpf --quiet
echo "check passed; scripts/test.sh (as root) runs the rest" >&2
