#!/bin/bash
# The dctk demo (`tools/dctk demo`). By default it runs the main job
# (tests/integration/main_job.sh, docs/INTEGRATION.md): Paxos-replicated FaRM
# over Bastion-secured containers, with a bank workload, attacks, a CM leader
# kill and a FaRM primary kill, and a final report (table + PNG); it needs root
# (network namespaces, eBPF). With --modules (or without root) it shows the
# modules one after another instead:
#   1. Speculative Paxos: 3 replica processes and a client on loopback UDP; the
#      leader is killed mid-run and the group carries on (view change); a final
#      check reads back every acknowledged write.
#   2. MOM: a small data-center simulation (ns-3, k=4 fat tree) and, as root, a
#      leaf-spine of DPDK software switches, comparing how often receivers see
#      multicasts in different orders under each design.
#   3. FaRM: one-sided reads and hashtable lookups on the shm fabric, against
#      memcpy and std::unordered_map in the same run.
#   4. Bastion (root only): eBPF programs in the kernel enforcing a policy on
#      containers in network namespaces: the allowed flow passes, the attacker's
#      scans, spoofing and connections are dropped, each with its reason.
# Everything it starts is stopped on exit, also on Ctrl-C or a failed step.
#
#   tools/demo.sh [--modules] [main job options: --runtime=auto|podman|netns --seconds=N --out=DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

MODULES=0 JOB_ARGS=()
for arg in "$@"; do
  case $arg in
    --modules) MODULES=1 ;;
    --runtime=* | --seconds=* | --out=*) JOB_ARGS+=("$arg") ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODULES" = 0 ] && [ "$(id -u)" = 0 ]; then
  printf '\n\033[1m== Building the main job (bazel -c opt, offline)\033[0m\n'
  bazel build -c opt --noshow_progress //tests/integration:main_job_bins >/tmp/dctk-demo-build.$$.log 2>&1 ||
    { grep -v linux-sandbox /tmp/dctk-demo-build.$$.log | tail -30; rm -f /tmp/dctk-demo-build.$$.log;
      echo "demo: the build failed (above)"; exit 1; }
  rm -f /tmp/dctk-demo-build.$$.log
  exec tests/integration/main_job.sh --bin="$(bazel info -c opt bazel-bin 2>/dev/null)" "${JOB_ARGS[@]}"
fi
if [ "$MODULES" = 0 ]; then
  echo "demo: the main job needs root (network namespaces, eBPF programs): run it as root."
  echo "demo: showing the modules one by one instead (the same as --modules)."
fi

WORK=$(mktemp -d /tmp/dctk-demo.XXXXXX)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "demo interrupted: cleaning up"; exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }

step "Building the demo's programs (bazel, offline)"
if ! bazel build -c opt \
  //speculative_paxos/tools:spaxos_replica //speculative_paxos/tools:spaxos_client \
  //mom/sim:mom_sim //mom/measure:mom_measure //mom/switch:mom_switch //farm/fabric:fabric_benchmark //farm/kv:hashtable_benchmark \
  //bastion/bench:demo >"$WORK/build.log" 2>&1; then
  grep -v 'linux-sandbox' "$WORK/build.log" | tail -30
  echo "demo: the build failed (above)"
  exit 1
fi
say "built."
BIN=$(bazel info -c opt bazel-bin 2>/dev/null)

demo_spaxos() {
  step "1. Speculative Paxos: a replicated key-value store, 3 replica processes on loopback"
  say "Replicas execute each request speculatively on arrival and answer with a hash of"
  say "their whole log; the client completes on 3 matching answers in one round trip."
  say "Then the leader is killed mid-run: the others elect a new one (view change), the"
  say "clients carry on, and every acknowledged write is read back."
  speculative_paxos/tools/local_group.sh --bin="$BIN/speculative_paxos/tools" --clients=4 \
    --duration=3 --kill-leader 2>&1 | sed 's/^/   /'
}

demo_mom() {
  step "2. MOM: mostly-ordered multicast, simulated at data-center scale and on real switches"
  mom/tools/demo.sh --bin="$BIN" 2>&1 | sed 's/^/   /'
}

demo_farm() {
  step "3. FaRM: one-sided reads of remote memory (shm fabric: separate address space)"
  say "A read copies an object from another machine's registered region without its CPU."
  "$BIN/farm/fabric/fabric_benchmark" --benchmark_filter='BM_ShmRead/64$|BM_ShmRead/4096$|BM_Memcpy/64$|BM_Memcpy/4096$' \
    --benchmark_min_time=0.2 2>/dev/null | grep '^BM_' | sed 's/^/   /'
  say "Hashtable lookups: usually one one-sided read of a bucket neighborhood:"
  "$BIN/farm/kv/hashtable_benchmark" --benchmark_min_time=0.2 \
    --benchmark_filter='BM_HashTableLookup/.*zipf:0|BM_UnorderedMapLookup/zipf:0' \
    2>/dev/null | grep '^BM_' | sed 's/^/   /'
  say "Multi-get: 32 keys over 4 machines, one batch per machine vs one read at a time:"
  "$BIN/farm/kv/hashtable_benchmark" --benchmark_min_time=0.2 \
    --benchmark_filter='BM_(MultiGet|SingleGets)/batch:32/machines:4$' \
    2>/dev/null | grep '^BM_' | sed 's/^/   /'
}

demo_bastion() {
  step "4. Bastion: eBPF security for containers in network namespaces"
  if [ "$(id -u)" != 0 ]; then
    say "skipped: loading eBPF programs needs root (run the demo as root to see it)"
    return 0
  fi
  "$BIN/bastion/bench/demo" 2>&1 | sed 's/^/   /'
}

demo_spaxos
demo_mom
demo_farm
demo_bastion
step "Done. Every process the demo started has been stopped."
