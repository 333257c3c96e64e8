#!/bin/bash
# Runs speculative_paxos/tools/local_group.sh (what `tools/dctk spaxos` runs) for a
# second per step with --kill-leader and checks its report: the PUT load ran, the
# durability check lost nothing across the leader's SIGKILL and --recover restart,
# every replica printed its exit line, and nothing is left running or on disk.
set -euo pipefail
ROOT=$TEST_SRCDIR/dctk
BIN=$ROOT/speculative_paxos/tools
fail() { echo "FAIL: $*" >&2; exit 1; }

OUT=$TEST_TMPDIR/local_group.out
"$BIN/local_group.sh" --bin="$BIN" --kill-leader --duration=1 >"$OUT" 2>&1 &
group=$!
# If this test is stopped or fails, stop the group first: its own trap stops the replicas.
trap 'kill "$group" 2>/dev/null || true; wait "$group" 2>/dev/null || true' EXIT
trap 'exit 143' INT TERM
status=0
wait "$group" || status=$?
trap - EXIT
out=$(cat "$OUT")
echo "$out"

[[ $status == 0 ]] || fail "local_group.sh exited $status"
grep -q '^protocol=spaxos clients=4 ops=[1-9][0-9]* ' <<<"$out" || fail "no PUT load result"
grep -q '^   killing the leader (replica 0, pid [0-9]*) with SIGKILL$' <<<"$out" ||
  fail "the leader was not killed"
grep -q '^   restarting replica 0 with --recover' <<<"$out" || fail "the leader was not restarted"
grep -q '^verify ok: [1-9][0-9]* acknowledged writes, 0 lost;' <<<"$out" ||
  fail "durability check did not pass"
[[ $(grep -c '^replica [012]: requests [0-9]* ' <<<"$out") == 3 ]] ||
  fail "not every replica (the restarted leader included) printed its exit line"
grep -q '^== local group: OK$' <<<"$out" || fail "no OK line"
dir=$(sed -n 's|.*(config \(/tmp/spaxos_group\.[^/]*\)/group\.conf)$|\1|p' <<<"$out")
[[ -n $dir ]] || fail "no config path in the report"
[[ ! -e $dir ]] || fail "work dir $dir left behind"
! pgrep -f "$dir/" >/dev/null || fail "processes of $dir left running: $(pgrep -af "$dir/")"

out=$("$BIN/local_group.sh" --bin="$BIN" --replicas=4 2>&1) && fail "--replicas=4 accepted"
grep -q "^--replicas must be 3, 5 or 7$" <<<"$out" || fail "no clear error for --replicas=4: $out"
echo PASS
