#!/usr/bin/env bash
# The MOM switch (mom_switch, DPDK af_packet) against a Linux bridge on the same
# veths, same run (mom/bench/switch_bench.h): unicast / multicast throughput,
# one-way latency, and latency under background load on shaped ports with and
# without strict priority. Needs root. Arguments go to switch_bench, e.g.
#   mom/tools/switch_bench.sh --phase_ms=2000 --background_load=3
# Builds with -c opt unless MOM_BENCH_COPT is set (e.g. MOM_BENCH_COPT= for fastbuild).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "switch_bench.sh: needs root (network namespaces, veths, DPDK af_packet, a bridge)" >&2
  exit 2
fi
copt=${MOM_BENCH_COPT--c opt}
# shellcheck disable=SC2086
bazel build $copt //mom/bench:switch_bench //mom/switch:mom_switch 2>&1 | tail -1 >&2
# shellcheck disable=SC2086
bin=$(bazel info $copt bazel-bin 2>/dev/null)
exec "$bin/mom/bench/switch_bench" --switch_binary="$bin/mom/switch/mom_switch" "$@"
