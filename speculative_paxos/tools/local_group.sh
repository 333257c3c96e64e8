#!/bin/bash
# local_group.sh: runs a Speculative Paxos replica group as separate processes
# on loopback UDP, drives a client load against it, prints the results and
# stops everything (also on Ctrl-C or an error). Takes well under a minute.
#
#   speculative_paxos/tools/local_group.sh [--replicas=3] [--clients=4] [--duration=3]
#       [--protocol=spaxos|vr|fastpaxos|unreplicated] [--kill-leader] [--bin=DIR]
#
# Steps: write a cluster config with free ports, start the replicas (KV app),
# run a closed-loop PUT load, then a durability check (every client writes
# rising values to its own key and reads the last one back). --kill-leader
# SIGKILLs the leader in the middle of the check and restarts it with
# --recover (state lost: the recovery protocol), so the check spans a view change. Fast Paxos
# (3 replicas only) has no recovery: its killed coordinator stays down and the other two
# change coordinator. Without --bin it builds the binaries with bazel. Exit status 0 only if
# both runs succeed.
set -euo pipefail

REPLICAS=3 CLIENTS=4 DURATION=3 PROTOCOL=spaxos KILL_LEADER=0 BIN=""
for arg in "$@"; do
  case "$arg" in
    --replicas=*) REPLICAS=${arg#*=} ;;
    --clients=*) CLIENTS=${arg#*=} ;;
    --duration=*) DURATION=${arg#*=} ;;
    --protocol=*) PROTOCOL=${arg#*=} ;;
    --kill-leader) KILL_LEADER=1 ;;
    --bin=*) BIN=${arg#*=} ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "local_group.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
case "$REPLICAS" in 3|5|7) ;; *) echo "--replicas must be 3, 5 or 7" >&2; exit 2 ;; esac
case "$PROTOCOL" in spaxos|vr|fastpaxos|unreplicated) ;; *) echo "--protocol: spaxos, vr, fastpaxos or unreplicated" >&2; exit 2 ;; esac
if [ "$PROTOCOL" = fastpaxos ] && [ "$REPLICAS" != 3 ]; then
  echo "--protocol=fastpaxos needs --replicas=3" >&2; exit 2
fi
[ "$PROTOCOL" = unreplicated ] && REPLICAS=1

if [ -z "$BIN" ]; then
  cd "$(dirname "$0")/../.."
  echo "== building spaxos_replica and spaxos_client"
  bazel build --noshow_progress //speculative_paxos/tools:spaxos_replica //speculative_paxos/tools:spaxos_client
  BIN=bazel-bin/speculative_paxos/tools
fi

DIR=$(mktemp -d /tmp/spaxos_group.XXXXXX)
declare -A PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
{
  members=""
  for ((i = 0; i < REPLICAS; i++)); do
    echo "nodes { name: \"r$i\" address: \"127.0.0.1:$(port)\" }"
    members+="\"r$i\", "
  done
  f=$(( (REPLICAS - 1) / 2 )); [ "$REPLICAS" = 1 ] && f=0
  echo "groups { name: \"shard0\" f: $f members: [${members%, }] }"
  echo "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 }"
} > "$DIR/group.conf"

start_replica() {  # index [extra flags]
  "$BIN/spaxos_replica" --config="$DIR/group.conf" --index="$1" --protocol="$PROTOCOL" \
    --app=kv "${@:2}" 2>>"$DIR/r$1.log" &
  PIDS[r$1]=$!
}

# Waits until replica $1 has said "serving" $2 times in its log (each start
# appends): its port is bound and it handles SIGTERM (prints its exit line).
wait_serving() {
  for ((t = 0; t < 200; t++)); do
    [ "$(grep -c serving "$DIR/r$1.log" 2>/dev/null)" -ge "$2" ] && return 0
    sleep 0.05
  done
  echo "replica $1 did not start:" >&2; cat "$DIR/r$1.log" >&2; exit 1
}

echo "== starting $REPLICAS $PROTOCOL replica process(es) on 127.0.0.1 (config $DIR/group.conf)"
for ((i = 0; i < REPLICAS; i++)); do start_replica "$i"; done
for ((i = 0; i < REPLICAS; i++)); do wait_serving "$i" 1; done

echo "== closed-loop PUT load: $CLIENTS client(s) for ${DURATION}s"
"$BIN/spaxos_client" --config="$DIR/group.conf" --protocol="$PROTOCOL" --clients="$CLIENTS" \
  --op=put --warmup=0.5s --duration="${DURATION}s"

echo "== durability check: $CLIENTS client(s) write for ${DURATION}s, then read back"
"$BIN/spaxos_client" --config="$DIR/group.conf" --protocol="$PROTOCOL" --clients="$CLIENTS" \
  --verify --warmup=0s --duration="${DURATION}s" > "$DIR/verify.out" 2>&1 &
PIDS[verify]=$!
if [ "$KILL_LEADER" = 1 ]; then
  if [ "$PROTOCOL" = unreplicated ]; then
    echo "   (--kill-leader ignored: an unreplicated server has no leader to replace)"
  else
    sleep "$(python3 -c "print($DURATION / 3)")"
    leader=0  # members[0] leads the first view
    echo "   killing the leader (replica $leader, pid ${PIDS[r$leader]}) with SIGKILL"
    kill -9 "${PIDS[r$leader]}"; wait "${PIDS[r$leader]}" 2>/dev/null || true
    unset "PIDS[r$leader]"
    if [ "$PROTOCOL" = fastpaxos ]; then
      echo "   (Fast Paxos has no recovery: replica $leader stays down)"
    else
      sleep 0.3
      echo "   restarting replica $leader with --recover (state lost)"
      start_replica "$leader" --recover
      wait_serving "$leader" 2
    fi
  fi
fi
status=0
wait "${PIDS[verify]}" || status=$?
unset "PIDS[verify]"
cat "$DIR/verify.out"

echo "== stopping replicas"
for ((i = 0; i < REPLICAS; i++)); do
  [ -n "${PIDS[r$i]:-}" ] || continue
  kill "${PIDS[r$i]}" 2>/dev/null || true; wait "${PIDS[r$i]}" 2>/dev/null || true
  unset "PIDS[r$i]"
done
grep -h "^replica [0-9]*: \(requests\|votes\)" "$DIR"/r*.log || true
if [ "$status" = 0 ]; then echo "== local group: OK"; else echo "== local group: FAILED"; fi
exit "$status"
