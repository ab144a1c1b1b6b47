#!/usr/bin/env bash
# The vxflow demo: builds vxflow, creates a Flannel-like two-node topology in
# network namespaces (VXLAN VNI 1 on UDP 8472, pods behind cni0 bridges), runs
# vxflow on node 1's underlay eth0, sends TCP, UDP and ICMP between pods on the
# two nodes, and shows the pod flows with their VNI and outer node addresses.
# Cleans up after itself. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p vxflow -p vxflow-tests
VXFLOW_BIN="$PWD/target/release/vxflow" exec target/release/vxflow-demo "$@"
