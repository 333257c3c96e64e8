#!/usr/bin/env bash
# Redis and memcached lookups on loopback with their own benchmark clients,
# 16-byte keys and 32-byte values, for comparison with the FaRM hashtable
# (//farm/kv:hashtable_benchmark). The server is pinned to CPU 0 and the
# client to CPU 1; "per server core" divides operations by the CPU seconds the
# server process used (utime + stime from /proc/PID/stat), which is what one
# server core sustains.
#
#   farm/bench/kv_compare.sh [KEYS] [REQUESTS]     (default 470000 2000000)
#
# Needs redis-server, redis-tools, memcached, libmemcached-tools (Debian).
set -euo pipefail

KEYS=${1:-470000}
REQUESTS=${2:-2000000}
TICK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER_PID=""

cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
# memcached's own counter NAME (from "stats"), e.g. cmd_get (counts keys, also in multi-gets).
mc_stat() {
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'stats\r\nquit\r\n' >&3
  tr -d '\r' <&3 | awk -v k="$2" '$2 == k {print $3}'
  exec 3<&-
}

# report NAME OPS_PER_SEC TICKS_BEFORE TICKS_AFTER OPS
report() {
  local secs
  secs=$(echo "($4 - $3) / $TICK" | bc -l)
  printf '%-44s %12.0f ops/s %12.0f ops per server-CPU-second (server CPU %.2f s)\n' \
    "$1" "$2" "$(echo "$5 / $secs" | bc -l)" "$secs"
}

# --- Redis: redis-benchmark, keys "key:%012d" (16 bytes), 32-byte values.
PORT=$(free_port)
taskset -c 0 redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --logfile "$WORK/redis.log" &
SERVER_PID=$!
wait_port "$PORT"
taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$PORT" -t set -n "$((KEYS * 5))" -r "$KEYS" -d 32 -P 32 -q >/dev/null
echo "redis keys loaded: $(redis-cli -p "$PORT" dbsize)"
for pipeline in 1 16; do
  before=$(cpu_ticks "$SERVER_PID")
  rps=$(taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$PORT" -t get -n "$REQUESTS" -r "$KEYS" -d 32 \
        -c 50 -P "$pipeline" --csv | awk -F'"' '/"GET"/ {print $4}')
  after=$(cpu_ticks "$SERVER_PID")
  report "redis GET, 50 clients, pipeline $pipeline" "$rps" "$before" "$after" "$REQUESTS"
  echo "    (keyspace_hits so far: $(redis-cli -p "$PORT" info stats | tr -d '\r' | awk -F: '/^keyspace_hits/ {print $2}'))"
done
stop_server

# --- memcached: memaslap (memcaslap), 16-byte keys, 32-byte values, 90% get
# commands; operations are counted by the server (cmd_get counts each key of
# a multi-get).
PORT=$(free_port)
taskset -c 0 memcached -u nobody -l 127.0.0.1 -p "$PORT" -U 0 -t 1 -m 1024 &
SERVER_PID=$!
wait_port "$PORT"
cat >"$WORK/memaslap.cfg" <<CFG
key
16 16 1
value
32 32 1
cmd
0 0.1
1 0.9
CFG
for division in 1 16; do
  before=$(cpu_ticks "$SERVER_PID")
  gets0=$(mc_stat "$PORT" cmd_get); sets0=$(mc_stat "$PORT" cmd_set); hits0=$(mc_stat "$PORT" get_hits)
  start=$(date +%s.%N)
  taskset -c 1 memcaslap -s "127.0.0.1:$PORT" -T 1 -c 50 -x "$REQUESTS" -F "$WORK/memaslap.cfg" \
    -d "$division" >/dev/null 2>&1
  secs=$(echo "$(date +%s.%N) - $start" | bc -l)
  after=$(cpu_ticks "$SERVER_PID")
  gets=$(( $(mc_stat "$PORT" cmd_get) - gets0 )); sets=$(( $(mc_stat "$PORT" cmd_set) - sets0 ))
  hits=$(( $(mc_stat "$PORT" get_hits) - hits0 ))
  report "memcached get (multi-get of $division), 50 conns" "$(echo "($gets + $sets) / $secs" | bc -l)" \
    "$before" "$after" "$((gets + sets))"
  echo "    (server counted $gets key gets, $hits hits, $sets sets)"
done
stop_server
