#!/bin/bash
# local_cluster.sh: a local FaRM cluster of separate processes: the CM service
# and N `farmd` machines on loopback, each region on --replicas machines.
# Prints the cluster file and the CM address (what FarmClient::Connect needs),
# checks every machine joined, then runs until Ctrl-C or --seconds, and stops
# every process it started (also on an error).
#
#   farm/tools/local_cluster.sh [--machines=3] [--replicas=2] [--fabric=shm|net]
#       [--seconds=0 (until Ctrl-C)] [--bin=DIR (holds farm/server/farmd)]
set -euo pipefail

MACHINES=3 REPLICAS=2 FABRIC=shm SECONDS_TO_RUN=0 BIN=""
for arg in "$@"; do
  case "$arg" in
    --machines=*) MACHINES=${arg#*=} ;;
    --replicas=*) REPLICAS=${arg#*=} ;;
    --fabric=*) FABRIC=${arg#*=} ;;
    --seconds=*) SECONDS_TO_RUN=${arg#*=} ;;
    --bin=*) BIN=${arg#*=} ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "local_cluster.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $MACHINES =~ ^[0-9]+$ ]] && ((MACHINES >= 1 && MACHINES <= 64)) ||
  { echo "--machines must be 1..64 (got '$MACHINES')" >&2; exit 2; }
[[ $REPLICAS =~ ^[0-9]+$ ]] && ((REPLICAS >= 1 && REPLICAS <= MACHINES)) ||
  { echo "--replicas must be 1..machines (got '$REPLICAS')" >&2; exit 2; }
case "$FABRIC" in shm|net) ;; *) echo "--fabric: shm or net (got '$FABRIC')" >&2; exit 2 ;; esac

if [[ -z $BIN ]]; then
  cd "$(dirname "$0")/../.."
  bazel build --noshow_progress //farm/server:farmd 2>&1 | grep -v '^INFO\|^Loading\|^Analyzing\|linux-sandbox' || true
  BIN=$(bazel info bazel-bin 2>/dev/null)
fi
FARMD=$BIN/farm/server/farmd
[[ -x $FARMD ]] || { echo "local_cluster.sh: no farmd at $FARMD" >&2; exit 1; }

DIR=$(mktemp -d /tmp/farm_cluster.XXXXXX)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'echo "== stopping"; exit 0' INT TERM

# The machines are the PRIMARY_BACKUP group (machine id = position + 1); the
# config requires that group to have exactly f + 1 members.
{
  echo 'nodes { name: "cm" address: "127.0.0.1:0" }'
  members=""
  for ((i = 1; i <= MACHINES; i++)); do
    echo "nodes { name: \"m$i\" address: \"127.0.0.$((i + 1)):0\" }"
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

"$FARMD" --config="$DIR/farm.conf" --role=cm --replicas="$REPLICAS" >"$DIR/cm.out" 2>"$DIR/cm.err" &
wait_line "$DIR/cm.out"
CM=$(awk '{print $2}' "$DIR/cm.out")
echo "== CM service at $CM (regions on $REPLICAS of $MACHINES machines, $FABRIC fabric)"
for ((i = 1; i <= MACHINES; i++)); do
  "$FARMD" --config="$DIR/farm.conf" --role=machine --name="m$i" --cm="$CM" --fabric="$FABRIC" \
    --txlog_dir="$DIR" >"$DIR/m$i.out" 2>"$DIR/m$i.err" &
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
