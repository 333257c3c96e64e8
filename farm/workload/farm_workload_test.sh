#!/bin/bash
# farm_workload end to end on loopback: farmd --role=cm and 3 farmd machines
# (net fabric, 2 copies of each region), then farm_workload:
#   1. with transfers updating the hashtable: the table has one shard per
#      machine, lookups find transfers' records, 0 misses, 0 wrong values,
#      invariant ok; a FaRM machine is SIGKILLed mid-run and transfers and
#      lookups go on after recovery (the shards it was primary of are read at
#      their new primaries);
#   2. with --update_table=false: lookups only ever find initial values;
#   3. bad flags are refused (exit 2).
set -euo pipefail
ROOT=${TEST_SRCDIR:-$PWD}/dctk
FARMD=$ROOT/farm/server/farmd
WORKLOAD=$ROOT/farm/workload/farm_workload
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/farm_workload_test.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$WORK"/*.log; do echo "== $f" >&2; tail -20 "$f" >&2; done
  exit 1
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }  # LINE KEY: the value of KEY=

cat >"$WORK/farm.conf" <<CONF
nodes { name: "cm" address: "127.0.0.1:0" }
nodes { name: "m1" address: "127.0.0.2:0" }
nodes { name: "m2" address: "127.0.0.3:0" }
nodes { name: "m3" address: "127.0.0.4:0" }
groups { name: "farm" replication: PRIMARY_BACKUP f: 2 members: ["m1", "m2", "m3"] }
timeouts { lease_ms: 1000 }
CONF

# Starts the CM and the machines; sets CM (its address) and M1_PID..M3_PID.
start_cluster() {  # LABEL
  # The log exists before the loop below reads it (the CM's shell opens it
  # only once scheduled: under load awk ran first, failed, and set -e ended the test).
  : >"$WORK/$1.cm.log"
  "$FARMD" --config="$WORK/farm.conf" --role=cm --replicas=2 --regions=6 --region_mb=4 >"$WORK/$1.cm.log" 2>&1 &
  PIDS+=($!)
  CM=""
  for _ in $(seq 300); do
    CM=$(awk '/^cm /{print $2; exit}' "$WORK/$1.cm.log")
    [[ -n $CM ]] && break
    sleep 0.1
  done
  [[ -n $CM ]] || fail "$1: the CM printed no address"
  for i in 1 2 3; do
    "$FARMD" --config="$WORK/farm.conf" --role=machine --name=m$i --cm="$CM" --fabric=net >"$WORK/$1.m$i.log" 2>&1 &
    PIDS+=($!)
    eval "M${i}_PID=$!"
  done
}

source "$ROOT/farm/workload/progress_lines.sh"
PROGRESS_FIELDS="tx_per_s lookups_per_s" PROGRESS_TIMEOUT_S=90

# 1. Transfers update the table; a machine dies mid-run.
start_cluster updates
"$WORKLOAD" --cm="$CM" --fabric=net --report_ms=500 --transfer_threads=2 --lookup_threads=1 --accounts=32 \
  --lookup_keys=64 >"$WORK/updates.workload.log" 2>&1 &
WL=$!
PIDS+=($WL)
wait_progress "$WORK/updates.workload.log" 3
start=$(grep '^workload start' "$WORK/updates.workload.log")
[[ $(field "$start" shards) == 3 && $(field "$start" update_table) == 1 ]] || fail "start line: $start"
kill -9 "$M3_PID"
# After recovery (a new configuration without m3) transfers and lookups go on.
wait_progress "$WORK/updates.workload.log" 4 "$(field "$start" config)"
kill -INT "$WL"
status=0
wait "$WL" || status=$?
out=$(cat "$WORK/updates.workload.log")
echo "$out" | grep -v '^progress '
grep '^progress ' <<<"$out" | awk '{ print $2, $3, $7, $10, $11, $12 }' | tr '\n' ';'
echo
((status == 0)) || fail "farm_workload exited $status"
grep -q '^invariant ok$' <<<"$out" || fail "invariant not ok"
summary=$(grep '^summary ' <<<"$out")
(( $(field "$summary" lookups) > 0 )) || fail "no lookups: $summary"
(( $(field "$summary" lookup_misses) == 0 && $(field "$summary" lookup_mismatches) == 0 )) || fail "$summary"
(( $(field "$summary" lookup_tx_values) > 0 && $(field "$summary" lookup_records) > 0 )) ||
  fail "no lookup found a transfer's record: $summary"
(( $(field "$summary" total) == $(field "$summary" expected_total) )) || fail "$summary"
(( $(field "$summary" lookup_reads) >= $(field "$summary" lookups) )) || fail "fewer reads than lookups: $summary"
cleanup

# 2. Transfers leave the table alone: only initial values are found.
start_cluster static
"$WORKLOAD" --cm="$CM" --fabric=net --seconds=3 --update_table=false --lookup_keys=64 >"$WORK/static.workload.log" 2>&1 ||
  fail "farm_workload --update_table=false failed"
summary=$(grep '^summary ' "$WORK/static.workload.log")
echo "$summary"
grep -q '^invariant ok$' "$WORK/static.workload.log" || fail "invariant not ok"
(( $(field "$summary" lookups) > 0 && $(field "$summary" lookup_tx_values) == 0 )) || fail "$summary"
# Its clients left the cluster at the end, nothing unfinished (ids free again).
left=$(grep '^left ' "$WORK/static.workload.log") || fail "no left line"
(( $(field "$left" clean) == $(field "$left" clients) )) || fail "a client did not leave cleanly: $left"
cleanup

# 3. Bad flags.
status=0
"$WORKLOAD" --cm=127.0.0.1:1 --lookup_shards=-1 >"$WORK/bad.log" 2>&1 || status=$?
((status == 2)) || fail "--lookup_shards=-1: exit $status, want 2"
grep -q "negative hashtable shard count" "$WORK/bad.log" || fail "no clear error for --lookup_shards=-1"
echo PASS
