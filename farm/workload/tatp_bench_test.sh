#!/bin/bash
# Smoke test of tatp_bench: a short run of both TATP paths (the directory
# baseline and the hashtable, alternating) on the shm fabric, then the
# hashtable alone with a machine killed mid-run; each must end with the
# tables' consistency check passing. Also: a bad --tables value is refused.
set -u
bench="farm/workload/tatp_bench"
err="${TEST_TMPDIR:-/tmp}/tatp_bench.err"
fail() { echo "FAIL: $*"; echo "--- stderr (last 20 lines):"; tail -20 "$err"; exit 1; }

out=$("$bench" --subscribers=200 --seconds=0.4 --slices=2 2>"$err") || fail "both: exit $?: $out"
echo "$out"
grep -q "^TATP, directory (baseline) (2 slices, alternating): 3 coordinators" <<<"$out" || fail "no directory line"
grep -q "^TATP, hashtable (2 slices, alternating): 3 coordinators" <<<"$out" || fail "no hashtable line"
grep -q "^consistency: OK" <<<"$out" || fail "consistency not OK"

out=$("$bench" --subscribers=200 --seconds=0.6 --tables=hashtable --kill 2>"$err") || fail "kill: exit $?: $out"
echo "$out"
grep -q "^TATP, hashtable, a machine killed mid-run: 2 coordinators" <<<"$out" || fail "no kill run"
grep -q "recovery: " <<<"$out" || fail "no recovery line"
grep -q "^consistency: OK" <<<"$out" || fail "consistency not OK after the kill"

"$bench" --tables=rows >/dev/null 2>&1
[ $? -eq 2 ] || fail "--tables=rows: want exit 2"
echo PASS
