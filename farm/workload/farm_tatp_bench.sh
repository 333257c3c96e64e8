#!/bin/bash
# farm_tatp_bench.sh: TATP as a client of farmd processes (farm_tatp against
# farm/tools/local_cluster.sh: the CM and 3 farmd machines, f = 1) against the
# in-process baseline (tatp_bench --tables=directory: the same 3 machines, f =
# 1, in one process, one coordinator per machine), alternating in one run so
# both see the same load. Per round and fabric: the in-process run, then one
# process run per --threads value. Each run prints its result lines and the
# load average (/proc/loadavg) before and after it.
#
# Both write transaction log files without fsync (local_cluster.sh gives each
# farmd --txlog_dir on /tmp; tatp_bench gets --tx_log_dir on /tmp), so they
# differ in where coordinators and participants run, not in logging.
#
#   farm/workload/farm_tatp_bench.sh --bin=DIR [--fabrics=shm,net] [--threads=1,2,3]
#       [--seconds=10] [--subscribers=3000] [--rounds=2] [--ship]
# DIR is an opt bazel-bin holding farm/server/farmd, farm/workload/farm_tatp
# and farm/workload/tatp_bench, and farm/tools/local_cluster.sh beside them
# (or the source tree's is used).
set -euo pipefail
BIN="" FABRICS=shm,net THREADS=1,2,3 SECS=10 SUBSCRIBERS=3000 ROUNDS=2 SHIP=""
for arg in "$@"; do
  case "$arg" in
    --bin=*) BIN=${arg#*=} ;;
    --fabrics=*) FABRICS=${arg#*=} ;;
    --threads=*) THREADS=${arg#*=} ;;
    --seconds=*) SECS=${arg#*=} ;;
    --subscribers=*) SUBSCRIBERS=${arg#*=} ;;
    --rounds=*) ROUNDS=${arg#*=} ;;
    --ship) SHIP=--ship ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "farm_tatp_bench.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
for b in farm/server/farmd farm/workload/farm_tatp farm/workload/tatp_bench; do
  [[ -x $BIN/$b ]] || { echo "farm_tatp_bench.sh: no $b in --bin='$BIN'" >&2; exit 2; }
done
LOCAL_CLUSTER=$(dirname "$0")/../tools/local_cluster.sh
WORK=$(mktemp -d /tmp/farm_tatp_bench.XXXXXX)
CLUSTER=""
cleanup() {
  if [[ -n $CLUSTER ]]; then kill -TERM "$CLUSTER" 2>/dev/null || true; wait "$CLUSTER" 2>/dev/null || true; fi
  CLUSTER=""
}
trap 'cleanup; rm -rf "$WORK"' EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }

in_process() {  # FABRIC
  local logs before
  logs=$(mktemp -d "$WORK/logs.XXXX")
  before=$(load)
  "$BIN/farm/workload/tatp_bench" --tables=directory --subscribers="$SUBSCRIBERS" --seconds="$SECS" --fabric="$1" \
    --tx_log_dir="$logs" 2>/dev/null | grep -E '^(baseline|TATP|  read-|  messages)' | sed "s/^/in-process $1: /"
  echo "in-process $1: load $before -> $(load)"
  rm -rf "$logs"
}

process() {  # FABRIC THREADS
  local log=$WORK/cluster.log cm="" before
  local workers=0
  [[ -n $SHIP ]] && workers=2
  "$LOCAL_CLUSTER" --bin="$BIN" --fabric="$1" --ship_workers=$workers >"$log" 2>&1 &
  CLUSTER=$!
  for _ in $(seq 600); do
    cm=$(sed -n 's/^== cluster ready: .*, CM \([0-9.:]*\) .*/\1/p' "$log")
    [[ -n $cm ]] && break
    kill -0 "$CLUSTER" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $cm ]] || { echo "process $1: the cluster did not start: $(tail -3 "$log")"; cleanup; return; }
  before=$(load)
  "$BIN/farm/workload/farm_tatp" --cm="$cm" --fabric="$1" --threads="$2" --subscribers="$SUBSCRIBERS" \
    --seconds="$SECS" $SHIP 2>/dev/null | grep -E '^(tatp|baseline|summary|phases|ship) ' |
    sed "s/^/process $1 threads=$2: /" || echo "process $1 threads=$2: farm_tatp failed"
  echo "process $1 threads=$2: load $before -> $(load)"
  cleanup
}

for ((r = 1; r <= ROUNDS; r++)); do
  for fabric in ${FABRICS//,/ }; do
    in_process "$fabric"
    for t in ${THREADS//,/ }; do process "$fabric" "$t"; done
  done
done
