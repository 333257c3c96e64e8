#!/bin/bash
# Log compaction: memory and log length over a long run, and throughput, with
# and without checkpoints, in the same run. 3 spaxos_replica processes
# (--app=kv) on loopback, 4 spaxos_client processes x 16 closed-loop clients
# doing PUTs; each --checkpoint_interval in INTERVALS (0 = no compaction) runs
# ROUNDS times, interleaved, so load changes hit every setting alike. Per run:
# client throughput (sum), the replicas' resident memory (VmRSS, max over the
# 3 replicas) sampled every second, and at exit each replica's log length,
# entries held, checkpoints and checkpoint size. Prints the load average too.
#
#   bazel build -c opt //speculative_paxos/tools:all
#   speculative_paxos/bench/compaction_bench.sh [bazel-bin dir] [seconds]
set -euo pipefail
BIN=${1:-bazel-bin/speculative_paxos/tools}
SECS=${2:-20}
INTERVALS=${INTERVALS:-0 4096 256}
ROUNDS=${ROUNDS:-2}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "start: $(uptime)"
printf "%-9s %5s %10s %9s %9s %10s %10s %9s %9s\n" interval round "ops/s" "rss0(MB)" "rss(MB)" "log_end" "held" "ckpts" "ckpt(B)"
for round in $(seq 1 "$ROUNDS"); do
  for interval in $INTERVALS; do
    cat > "$DIR/shard.conf" <<CONF
nodes { name: "r0" address: "127.0.0.1:$(port)" }
nodes { name: "r1" address: "127.0.0.1:$(port)" }
nodes { name: "r2" address: "127.0.0.1:$(port)" }
groups { name: "shard0" f: 1 members: ["r0", "r1", "r2"] }
timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 200 }
CONF
    pids=()
    for i in 0 1 2; do
      "$BIN/spaxos_replica" --config="$DIR/shard.conf" --index=$i --app=kv \
        --checkpoint_interval="$interval" 2>"$DIR/r$i.log" &
      pids+=($!)
    done
    sleep 0.3
    cpids=()
    for j in 0 1 2 3; do
      "$BIN/spaxos_client" --config="$DIR/shard.conf" --clients=16 --op=put \
        --warmup=1s --duration="${SECS}s" >"$DIR/c$j.out" 2>"$DIR/c$j.err" &
      cpids+=($!)
    done
    sleep 2
    rss0=0
    for p in "${pids[@]}"; do r=$(rss_kb "$p"); [ "$r" -gt "$rss0" ] && rss0=$r; done
    rss=0
    for ((t = 0; t < SECS; t++)); do
      sleep 1
      for p in "${pids[@]}"; do r=$(rss_kb "$p"); [ "$r" -gt "$rss" ] && rss=$r; done
    done
    wait "${cpids[@]}"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    tput=$(grep -ho "throughput=[0-9.]*" "$DIR"/c*.out | cut -d= -f2 | awk '{s += $1} END {printf "%.0f", s}')
    stat() { grep -ho " $1 [0-9]*" "$DIR"/r*.log | awk '{print $2}' | sort -n | tail -1; }
    printf "%-9s %5d %10s %9.1f %9.1f %10s %10s %9s %9s\n" "$interval" "$round" "$tput" \
      "$(echo "$rss0 / 1024" | bc -l)" "$(echo "$rss / 1024" | bc -l)" \
      "$(stat log_end)" "$(stat log_entries)" "$(stat checkpoints)" "$(stat checkpoint_bytes)"
  done
done
echo "end: $(uptime)"
