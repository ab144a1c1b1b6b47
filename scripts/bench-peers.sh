#!/usr/bin/env bash
# vxflow beside softflowd and pmacct's pmacctd (nfprobe), and beside no
# probe, on the Flannel-like namespace topology: each probe watches node 1's
# underlay eth0 and exports to nfcapd, on three workloads (small UDP at the
# maximum rate, 100,000 distinct flows, a TCP/UDP/ICMP mix), in interleaved
# rounds (VXFLOW_PEER_ROUNDS, default 3). Prints one table per workload, as
# the README shows. Takes about ten minutes; needs root and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p vxflow -p vxflow-tests
VXFLOW_RELEASE_BIN="$PWD/target/release/vxflow" exec target/release/vxflow-bench-peers "$@"
