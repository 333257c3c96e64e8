#!/bin/bash
# Runs farm/tools/local_cluster.sh for a second per fabric and checks its report.
set -euo pipefail
ROOT=$TEST_SRCDIR/dctk
fail() { echo "FAIL: $*" >&2; exit 1; }
for fabric in shm net; do
  out=$("$ROOT/farm/tools/local_cluster.sh" --bin="$ROOT" --machines=3 --fabric=$fabric --seconds=1)
  echo "$out"
  [[ $(grep -c '^   machine [123] 127\.0\.0\.[234]:[0-9]*$' <<<"$out") == 3 ]] ||
    fail "$fabric: not every machine reported its address"
  grep -qF "== cluster ready: config $TEST_TMPDIR/farm_cluster." <<<"$out" || fail "$fabric: no 'cluster ready'"
  dir=$(sed -n 's/.*(logs in \(.*\))$/\1/p' <<<"$out")
  [[ -n $dir && ! -e $dir ]] || fail "$fabric: work dir '$dir' left behind"
done
! pgrep -f "$ROOT/farm/server/farmd" >/dev/null || fail "farmd processes left running"
out=$("$ROOT/farm/tools/local_cluster.sh" --bin="$ROOT" --machines=0 2>&1) && fail "--machines=0 accepted"
grep -q "must be 1..64" <<<"$out" || fail "no clear error for --machines=0: $out"
echo PASS
