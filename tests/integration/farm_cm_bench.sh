#!/usr/bin/env bash
# farm_cm_bench.sh: the bank workload (farm_workload) against 3 farmd machines
# (net fabric, loopback) with each of the two CMs in the same run:
#   local       farmd --role=cm (the configuration state in the CM process)
#   replicated  cm_driver over 3 cm_replica processes (Speculative Paxos)
# and the driver's lease-renewal latency through the replicas. Unprivileged.
#
#   tests/integration/farm_cm_bench.sh [--bin=bazel-bin] [--seconds=10]
#
# Prints, per CM, the workload's summary line; then the driver's renew p50/p99
# (medians over its per-second stats lines).
set -euo pipefail

BIN=bazel-bin
SECONDS_PER_RUN=10
for arg in "$@"; do
  case "$arg" in
    --bin=*) BIN="${arg#--bin=}" ;;
    --seconds=*) SECONDS_PER_RUN="${arg#--seconds=}" ;;
    *) echo "usage: $0 [--bin=DIR] [--seconds=N]" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d /tmp/farm_cm_bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT

# A free UDP port on 127.0.0.1 (for the replicas).
free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cat > "$WORK/cluster.conf" <<CONF
nodes { name: "cm0" address: "127.0.0.1:$(free_udp_port)" }
nodes { name: "cm1" address: "127.0.0.1:$(free_udp_port)" }
nodes { name: "cm2" address: "127.0.0.1:$(free_udp_port)" }
nodes { name: "m1" address: "127.0.0.2:0" }
nodes { name: "m2" address: "127.0.0.3:0" }
nodes { name: "m3" address: "127.0.0.4:0" }
groups { name: "cm" f: 1 members: ["cm0", "cm1", "cm2"] }
groups { name: "farm" replication: PRIMARY_BACKUP f: 2 members: ["m1", "m2", "m3"] }
timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 lease_ms: 1000 }
CONF

# Waits for the first "cm ADDRESS" line of $1 and prints ADDRESS.
cm_address() {
  for _ in $(seq 300); do
    if grep -q '^cm ' "$1" 2>/dev/null; then awk '/^cm /{print $2; exit}' "$1"; return; fi
    sleep 0.1
  done
  echo "no CM address in $1" >&2
  exit 1
}

# Runs the machines and the workload against CM address $2; label $1.
run_workload() {
  local label=$1 cm=$2
  for i in 1 2 3; do
    "$BIN/farm/server/farmd" --config="$WORK/cluster.conf" --role=machine --name=m$i --cm="$cm" --fabric=net \
      > "$WORK/$label.m$i.log" 2>&1 &
    PIDS+=($!)
  done
  "$BIN/farm/workload/farm_workload" --cm="$cm" --fabric=net --seconds="$SECONDS_PER_RUN" \
    > "$WORK/$label.workload.log" 2>&1
  printf '%-10s %s\n' "$label" "$(grep '^summary ' "$WORK/$label.workload.log")"
  grep -q '^invariant ok' "$WORK/$label.workload.log" || { echo "$label: invariant failed" >&2; exit 1; }
}

"$BIN/farm/server/farmd" --config="$WORK/cluster.conf" --role=cm --replicas=2 --regions=6 --region_mb=4 \
  > "$WORK/local.cm.log" 2>&1 &
PIDS+=($!)
run_workload local "$(cm_address "$WORK/local.cm.log")"
cleanup

for i in 0 1 2; do
  "$BIN/tests/integration/cm_replica" --config="$WORK/cluster.conf" --index=$i > "$WORK/cm$i.log" 2>&1 &
  PIDS+=($!)
done
"$BIN/tests/integration/cm_driver" --config="$WORK/cluster.conf" --replicas=2 --regions=6 --region_mb=4 \
  > "$WORK/driver.log" 2>&1 &
PIDS+=($!)
run_workload replicated "$(cm_address "$WORK/driver.log")"
# Medians over the stats lines that saw renewals.
grep '^cm_driver ' "$WORK/driver.log" | tr ' ' '\n' | awk -F= '
  $1 == "renew_p50_us" && $2 > 0 { p50[n50++] = $2 }
  $1 == "renew_p99_us" && $2 > 0 { p99[n99++] = $2 }
  function median(a, n,   i, j, t) {
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int(n / 2)] : 0
  }
  END { printf "driver     renew_p50_us=%d renew_p99_us=%d (medians of %d per-second lines)\n", median(p50, n50), median(p99, n99), n50 }'
