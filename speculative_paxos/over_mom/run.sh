#!/usr/bin/env bash
# Speculative Paxos over each MOM design on the real software data plane, with
# replicated unicast as the same-run baseline (root: namespaces, veths, DPDK
# af_packet switches). Builds the bench, the replica/client process and the
# switch (or takes them from --bin=BAZEL_BIN_DIR, e.g. a -c opt output), copies
# them aside (bazel-bin moves when others build) and runs
# spaxos_over_mom_bench with the remaining arguments, e.g.
#   speculative_paxos/over_mom/run.sh --runs=3 --duration_ms=3000 --csv=/tmp/om.csv
#   speculative_paxos/over_mom/run.sh --bin=/tmp/ob/execroot/dctk/bazel-out/k8-opt/bin
# Leaves nothing behind (the bench removes its namespaces, veths, processes).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: needs root (network namespaces, veths, DPDK af_packet)" >&2
  exit 2
fi
bin=""
args=()
for a in "$@"; do
  case "$a" in
    --bin=*) bin="${a#--bin=}" ;;
    *) args+=("$a") ;;
  esac
done
if [[ -z "$bin" ]]; then
  bazel build //speculative_paxos/over_mom:spaxos_over_mom_bench \
    //speculative_paxos/over_mom:spaxos_mom_node //mom/switch:mom_switch 2>&1 | tail -1 >&2
  bin=bazel-bin
fi
tmp=$(mktemp -d /tmp/spaxos_over_mom_bin.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp "$bin/speculative_paxos/over_mom/spaxos_over_mom_bench" \
   "$bin/speculative_paxos/over_mom/spaxos_mom_node" "$bin/mom/switch/mom_switch" "$tmp/"
"$tmp/spaxos_over_mom_bench" --switch_binary="$tmp/mom_switch" \
  --node_binary="$tmp/spaxos_mom_node" "${args[@]+"${args[@]}"}"
