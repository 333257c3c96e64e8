#!/bin/bash
# farm_tatp end to end against farmd processes (farm/tools/local_cluster.sh:
# the CM and 3 farmd machines on loopback, 2 copies of each region, f = 1):
#   1. shm fabric, client-coordinated: both kinds of the mix commit, the
#      baseline and the commit phases are printed, every read-write
#      transaction took RPCs (a client has no local participant); the
#      clients leave at the end, so a second run against the same cluster
#      gets the same ids;
#   2. net fabric, read-write transactions shipped to ship workers
#      (--ship_workers=1): a machine is SIGKILLed mid-run and transactions go
#      on in the configuration without it (Unavailable: refresh and retry);
#   3. bad flags are refused (exit 2).
# Every process is stopped at the end, also when a step fails.
set -euo pipefail
ROOT=${TEST_SRCDIR:-$PWD}/dctk
TATP=$ROOT/farm/workload/farm_tatp
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/farm_tatp_test.XXXXXX")
CLUSTERS=() CLIENTS=()
cleanup() {
  for p in "${CLIENTS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${CLUSTERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done  # it stops its farmd processes
  for p in "${CLIENTS[@]}" "${CLUSTERS[@]}"; do wait "$p" 2>/dev/null || true; done
  CLUSTERS=() CLIENTS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.log; do echo "== $f" >&2; tail -20 "$f" >&2; done
  exit 1
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }  # LINE KEY: the value of KEY=

start_cluster() {  # LABEL local_cluster.sh-FLAGS...: sets CM
  local log=$WORK/$1.cluster.log
  "$ROOT/farm/tools/local_cluster.sh" --bin="$ROOT" "${@:2}" >"$log" 2>&1 &
  CLUSTERS+=($!)
  for _ in $(seq 600); do
    grep -q '^== cluster ready' "$log" && break
    kill -0 "${CLUSTERS[-1]}" 2>/dev/null || fail "$1: local_cluster.sh exited"
    sleep 0.1
  done
  CM=$(sed -n 's/^== cluster ready: .*, CM \([0-9.:]*\) .*/\1/p' "$log")
  [[ -n $CM ]] || fail "$1: the cluster was not ready within 60 s"
}

source "$ROOT/farm/workload/progress_lines.sh"
PROGRESS_FIELDS="tx_per_s" PROGRESS_TIMEOUT_S=120

# 1. shm, client-coordinated.
start_cluster shm --fabric=shm
"$TATP" --cm="$CM" --fabric=shm --threads=2 --subscribers=300 --baseline_ops=100 --seconds=2 --report_ms=500 \
  >"$WORK/shm.tatp.log" 2>&1 || fail "farm_tatp (shm) exited $?"
out=$(cat "$WORK/shm.tatp.log")
grep -E '^(tatp|baseline|summary|phases|ship) ' <<<"$out"
start=$(grep '^tatp start ' <<<"$out") || fail "no start line"
[[ $(field "$start" subscribers) == 300 && $(field "$start" threads) == 2 && $(field "$start" ship) == 0 ]] ||
  fail "start line: $start"
grep -q '^baseline ro_p50_us=[0-9.]* ro_p99_us=[0-9.]* rw_p50_us=[0-9.]* rw_p99_us=[0-9.]*$' <<<"$out" || fail "no baseline"
summary=$(grep '^summary ' <<<"$out") || fail "no summary"
(( $(field "$summary" read_only) > 0 && $(field "$summary" read_write) > 0 )) || fail "not both kinds: $summary"
phases=$(grep '^phases ' <<<"$out") || fail "no phases line"
(( $(field "$phases" commits) > 0 )) || fail "no read-write commit timed: $phases"
awk -v r="$(field "$phases" rpcs_per_rw)" 'BEGIN { exit !(r >= 2) }' || fail "a commit takes RPCs: $phases"
[[ $(field "$phases" fast_path_per_rw) == 0.00 ]] || fail "a client has no local participant: $phases"
# The clients left at the end (FarmClient::Leave), so a second run against
# the same cluster gets the same ids.
grep -q '^left clients=2 clean=2 ids=100-101$' <<<"$out" || fail "the clients did not leave cleanly: $(grep '^left' <<<"$out")"
"$TATP" --cm="$CM" --fabric=shm --threads=1 --subscribers=50 --baseline_ops=0 --seconds=1 \
  >"$WORK/shm2.tatp.log" 2>&1 || fail "a second farm_tatp against the same cluster exited $?"
grep -q '^left clients=1 clean=1 ids=100-100$' "$WORK/shm2.tatp.log" ||
  fail "the second run's client did not get id 100 back: $(grep '^left' "$WORK/shm2.tatp.log")"
cleanup

# 2. net, shipped read-write transactions, a machine killed mid-run.
start_cluster net --fabric=net --ship_workers=1
"$TATP" --cm="$CM" --fabric=net --ship --threads=2 --subscribers=300 --baseline_ops=20 --seconds=0 --report_ms=500 \
  >"$WORK/net.tatp.log" 2>&1 &
CLIENTS+=($!)
wait_progress "$WORK/net.tatp.log" 2
start=$(grep '^tatp start ' "$WORK/net.tatp.log")
[[ $(field "$start" ship) == 1 ]] || fail "start line: $start"
m3=$(pgrep -f -- "--name=m3 --cm=$CM ") || fail "no farmd m3 of this cluster"
kill -9 "$m3"
wait_progress "$WORK/net.tatp.log" 3 "$(field "$start" config)"
kill -INT "${CLIENTS[0]}"
status=0
wait "${CLIENTS[0]}" || status=$?
CLIENTS=()
out=$(cat "$WORK/net.tatp.log")
grep -E '^(tatp|baseline|summary|phases|ship) ' <<<"$out"
grep '^progress ' <<<"$out" | awk '{ print $2, $3, $9, $10 }' | tr '\n' ';'
echo
((status == 0)) || fail "farm_tatp (net, ship) exited $status"
summary=$(grep '^summary ' <<<"$out") || fail "no summary"
(( $(field "$summary" read_only) > 0 && $(field "$summary" read_write) > 0 )) || fail "not both kinds: $summary"
ship=$(grep '^ship ' <<<"$out") || fail "no ship line"
(( $(field "$ship" shipped) > 0 && $(field "$ship" committed) > 0 )) || fail "nothing shipped: $ship"
cleanup

# 3. Bad flags.
for bad in "--threads=0|threads must be >= 1" "--subscribers=0|subscribers must be >= 1" \
           "--fabric=rdma|fabric must be net or shm" "--cm=|the CM address is required"; do
  IFS='|' read -r flag want <<<"$bad"
  status=0
  "$TATP" --cm=127.0.0.1:1 "$flag" >"$WORK/bad.log" 2>&1 || status=$?
  ((status == 2)) || fail "$flag: exit $status, want 2"
  grep -q "$want" "$WORK/bad.log" || fail "$flag: no clear error ('$want'): $(cat "$WORK/bad.log")"
done
echo PASS
