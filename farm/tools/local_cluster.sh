#!/bin/bash
# local_cluster.sh: a local FaRM cluster of separate processes: the CM service
# and N `farmd` machines on loopback, each region on --replicas machines.
# Prints the cluster file and the CM address (what FarmClient::Connect needs),
# checks every machine joined, then runs until Ctrl-C or --seconds, and stops
# every process it started (also on an error). With --netns (root, net fabric)
# every machine runs in its own network namespace on a bridge, the CM on the
# bridge's host address; namespaces, veths and bridge are deleted on exit.
#
#   farm/tools/local_cluster.sh [--machines=3] [--replicas=2] [--fabric=shm|net]
#       [--netns] [--seconds=0 (until Ctrl-C)]
#       [--bin=DIR (holds farm/server/farmd; default: build it with -c opt)]
#       [--ship_workers=0 (per machine: runs transactions clients ship, e.g. farm_tatp --ship)]
set -euo pipefail

MACHINES=3 REPLICAS=2 FABRIC=shm SECONDS_TO_RUN=0 BIN="" NETNS=0 SHIP_WORKERS=0
for arg in "$@"; do
  case "$arg" in
    --machines=*) MACHINES=${arg#*=} ;;
    --replicas=*) REPLICAS=${arg#*=} ;;
    --fabric=*) FABRIC=${arg#*=} ;;
    --seconds=*) SECONDS_TO_RUN=${arg#*=} ;;
    --bin=*) BIN=${arg#*=} ;;
    --ship_workers=*) SHIP_WORKERS=${arg#*=} ;;
    --netns) NETNS=1 FABRIC=net ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "local_cluster.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $MACHINES =~ ^[0-9]+$ ]] && ((MACHINES >= 1 && MACHINES <= 64)) ||
  { echo "--machines must be 1..64 (got '$MACHINES')" >&2; exit 2; }
[[ $REPLICAS =~ ^[0-9]+$ ]] && ((REPLICAS >= 1 && REPLICAS <= MACHINES)) ||
  { echo "--replicas must be 1..machines (got '$REPLICAS')" >&2; exit 2; }
[[ $SHIP_WORKERS =~ ^[0-9]+$ ]] && ((SHIP_WORKERS <= 64)) ||
  { echo "--ship_workers must be 0..64 (got '$SHIP_WORKERS')" >&2; exit 2; }
case "$FABRIC" in shm|net) ;; *) echo "--fabric: shm or net (got '$FABRIC')" >&2; exit 2 ;; esac
if ((NETNS)); then
  [[ $FABRIC == net ]] || { echo "--netns runs the net fabric (shm needs one host)" >&2; exit 2; }
  [[ $(id -u) == 0 ]] || { echo "--netns needs root (network namespaces)" >&2; exit 2; }
fi

if [[ -z $BIN ]]; then
  cd "$(dirname "$0")/../.."
  bazel build -c opt --noshow_progress //farm/server:farmd 2>&1 | grep -v '^INFO\|^Loading\|^Analyzing\|linux-sandbox' || true
  BIN=$(bazel info -c opt bazel-bin 2>/dev/null)
fi
FARMD=$BIN/farm/server/farmd
[[ -x $FARMD ]] || { echo "local_cluster.sh: no farmd at $FARMD" >&2; exit 1; }

DIR=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/farm_cluster.XXXXXX")  # a test's own directory under Bazel
TAG=fc$$          # names of this run's namespaces, veths and bridge
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if ((NETNS)); then
    for ((i = 1; i <= MACHINES; i++)); do ip netns del "${TAG}m$i" 2>/dev/null || true; done
    ip link del "${TAG}br" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'echo "== stopping"; exit 0' INT TERM

# Machine i's host: 127.0.0.(i+1), or 10.213.0.(i+1) in namespace ${TAG}m$i
# on bridge ${TAG}br (host side 10.213.0.1, where the CM listens).
HOST=127.0.0
CM_HOST=127.0.0.1
if ((NETNS)); then
  HOST=10.213.0 CM_HOST=10.213.0.1
  export PATH=$PATH:/usr/sbin:/sbin
  ip link add "${TAG}br" type bridge
  ip addr add "$CM_HOST/24" dev "${TAG}br"
  ip link set "${TAG}br" up
  for ((i = 1; i <= MACHINES; i++)); do
    ns=${TAG}m$i
    ip netns add "$ns"
    ip link add "${TAG}v$i" type veth peer name eth0 netns "$ns"
    ip link set "${TAG}v$i" master "${TAG}br" up
    ip -n "$ns" addr add "$HOST.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
fi
machine_cmd() {  # I: the command prefix that runs machine I (its namespace)
  ((NETNS)) && echo "ip netns exec ${TAG}m$1" || true
}

# The machines are the PRIMARY_BACKUP group (machine id = position + 1); the
# config requires that group to have exactly f + 1 members.
{
  echo "nodes { name: \"cm\" address: \"$CM_HOST:0\" }"
  members=""
  for ((i = 1; i <= MACHINES; i++)); do
    echo "nodes { name: \"m$i\" address: \"$HOST.$((i + 1)):0\" }"
    members+="${members:+, }\"m$i\""
  done
  echo "groups { name: \"farm\" replication: PRIMARY_BACKUP f: $((MACHINES - 1)) members: [$members] }"
  echo 'timeouts { lease_ms: 1000 }'
} >"$DIR/farm.conf"

wait_line() {  # FILE: waits up to 10 s for the process to print its first line
  for _ in $(seq 100); do [[ -s $1 ]] && return 0; sleep 0.1; done
  echo "local_cluster.sh: no answer in $1; its log:" >&2
  cat "${1%.out}.err" >&2
  exit 1
}

"$FARMD" --config="$DIR/farm.conf" --role=cm --cm_host="$CM_HOST" --replicas="$REPLICAS" \
  >"$DIR/cm.out" 2>"$DIR/cm.err" &
wait_line "$DIR/cm.out"
CM=$(awk '{print $2}' "$DIR/cm.out")
echo "== CM service at $CM (regions on $REPLICAS of $MACHINES machines, $FABRIC fabric$( ((NETNS)) && echo ", one network namespace per machine"))"
for ((i = 1; i <= MACHINES; i++)); do
  $(machine_cmd $i) "$FARMD" --config="$DIR/farm.conf" --role=machine --name="m$i" --cm="$CM" --fabric="$FABRIC" \
    --txlog_dir="$DIR" --ship_workers="$SHIP_WORKERS" >"$DIR/m$i.out" 2>"$DIR/m$i.err" &
done
for ((i = 1; i <= MACHINES; i++)); do
  wait_line "$DIR/m$i.out"
  echo "   $(cat "$DIR/m$i.out")"
done
for _ in $(seq 100); do grep -q 'cluster ready' "$DIR/cm.err" && break; sleep 0.1; done
grep -q 'cluster ready' "$DIR/cm.err" || { echo "local_cluster.sh: the CM never saw every machine join" >&2; cat "$DIR/cm.err" >&2; exit 1; }
echo "== cluster ready: config $DIR/farm.conf, CM $CM (logs in $DIR)"
if ((SECONDS_TO_RUN > 0)); then
  sleep "$SECONDS_TO_RUN"
  echo "== stopping after ${SECONDS_TO_RUN}s"
else
  echo "   (Ctrl-C stops the cluster)"
  wait
fi
