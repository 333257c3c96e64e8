#!/bin/bash
# farm_workload_bench.sh: farm_workload against a fresh loopback cluster
# (farmd --role=cm, 3 farmd machines, net fabric, 2 copies of each region)
# for each variant in turn, --rounds times, alternating, so variants share
# the machine's load. Prints each run's summary line and the load average
# (a run that fails, e.g. a machine's lease lost under load, says so and
# the next one starts).
#
#   farm/workload/farm_workload_bench.sh [--seconds=10] [--rounds=2] \
#       'LABEL|BIN_DIR|extra farm_workload flags' ...
#   e.g. 'before|/tmp/old|' 'after|/tmp/new|' 'after-no-update|/tmp/new|--update_table=false'
# BIN_DIR holds farm/server/farmd and farm/workload/farm_workload (e.g. an
# opt bazel-bin).
set -euo pipefail
SECONDS_PER_RUN=10 ROUNDS=2 VARIANTS=()
for arg in "$@"; do
  case "$arg" in
    --seconds=*) SECONDS_PER_RUN=${arg#*=} ;;
    --rounds=*) ROUNDS=${arg#*=} ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --*) echo "farm_workload_bench.sh: unknown flag '$arg'" >&2; exit 2 ;;
    *) VARIANTS+=("$arg") ;;
  esac
done
((${#VARIANTS[@]} > 0)) || { echo "farm_workload_bench.sh: no variant (try --help)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/farm_workload_bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
cat >"$WORK/farm.conf" <<CONF
nodes { name: "cm" address: "127.0.0.1:0" }
nodes { name: "m1" address: "127.0.0.2:0" }
nodes { name: "m2" address: "127.0.0.3:0" }
nodes { name: "m3" address: "127.0.0.4:0" }
groups { name: "farm" replication: PRIMARY_BACKUP f: 2 members: ["m1", "m2", "m3"] }
timeouts { lease_ms: 1000 }
CONF

run() {  # LABEL BIN EXTRA...
  local label=$1 bin=$2 cm=""
  shift 2
  "$bin/farm/server/farmd" --config="$WORK/farm.conf" --role=cm --replicas=2 --regions=6 --region_mb=16 \
    >"$WORK/cm.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do
    cm=$(awk '/^cm /{print $2; exit}' "$WORK/cm.log")
    [[ -n $cm ]] && break
    sleep 0.1
  done
  [[ -n $cm ]] || { echo "$label: the CM printed no address" >&2; exit 1; }
  for i in 1 2 3; do
    "$bin/farm/server/farmd" --config="$WORK/farm.conf" --role=machine --name=m$i --cm="$cm" --fabric=net \
      >"$WORK/m$i.log" 2>&1 &
    PIDS+=($!)
  done
  "$bin/farm/workload/farm_workload" --cm="$cm" --fabric=net --seconds="$SECONDS_PER_RUN" \
    --transfer_threads=2 --lookup_threads=1 --accounts=64 "$@" >"$WORK/workload.log" 2>&1 ||
    echo "$label: farm_workload failed: $(tail -1 "$WORK/workload.log")" >&2
  printf '%-16s %s | median lookup_p50_us %s | load %s\n' "$label" \
    "$(grep '^summary ' "$WORK/workload.log" || echo '(no summary)')" \
    "$(grep '^progress ' "$WORK/workload.log" | tr ' ' '\n' | sed -n 's/^lookup_p50_us=//p' | sort -n |
       awk '{ v[n++] = $1 } END { print n ? v[int(n / 2)] : "-" }')" "$(cut -d' ' -f1-3 /proc/loadavg)"
  cleanup
}

for ((r = 1; r <= ROUNDS; r++)); do
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label bin extra <<<"$v"
    # shellcheck disable=SC2086  # extra flags split on spaces
    run "$label" "$bin" $extra
  done
done
