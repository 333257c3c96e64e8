#!/usr/bin/env bash
# Measures MOM designs on the real software data plane: builds mom_measure,
# mom_switch and mom_controller, then runs them (as root: namespaces, veths,
# DPDK af_packet); mom_controller configures the switches for each design.
# Every argument goes to mom_measure (see `mom_measure --help`), e.g.
#   mom/tools/measure.sh --messages=1000 --background_mbps=60 --seeds=3 --csv=/tmp/m.csv
# Prints one row per design and seed: reorder rate, lost copies, stamped
# sequence gaps, roots in use, latency p50/p99 and switch queue drops. The
# naive design is the baseline of the same run. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "measure.sh: needs root (network namespaces, veths, DPDK af_packet)" >&2
  exit 2
fi
bazel build //mom/measure:mom_measure //mom/switch:mom_switch //mom/controller:mom_controller \
  2>&1 | tail -1 >&2
exec bazel-bin/mom/measure/mom_measure --switch_binary=bazel-bin/mom/switch/mom_switch \
  --controller_binary=bazel-bin/mom/controller/mom_controller "$@"
