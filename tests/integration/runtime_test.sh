#!/bin/bash
# runtime_test.sh RUNTIME (auto|podman|netns): the demo's container layer for
# real. Brings up the nine role containers, starts the 3 cm_replica processes
# in cm0-2 and registers 3 FaRM machines from the client container with
# cm_ctl; the replicas' state files must agree. Then tears down and checks that
# nothing is left (containers, network, namespaces, bridge, the monitor's
# cgroup, processes, work dir); the same after a failing step and after Ctrl-C
# (SIGINT) mid-setup. Needs root; skips otherwise.
set -uo pipefail
RUNTIME=${1:-auto}
if [[ $(id -u) != 0 ]]; then echo "SKIPPED: needs root (containers, network namespaces)"; exit 0; fi
if [[ $RUNTIME == podman ]] && ! command -v podman >/dev/null; then
  echo "SKIPPED: podman not installed"; exit 0
fi
BIN=$(readlink -f tests/integration/cm_replica)
BIN=${BIN%/tests/integration/cm_replica}
RT=tests/integration/runtime.sh
OUT=${TEST_TMPDIR:-$(mktemp -d)}
FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }

# The state file of replica $1 lists machines 1-3 and is in normal status.
replica_has_machines() {
  local f=$1
  [[ -s $f ]] && grep -q '^# status: normal' "$f" && (( $(grep -c '^machines {' "$f") == 3 ))
}

scenario_normal() {
  source "$RT"
  dctk_rt_init "$RUNTIME" "$BIN"
  echo "$DCTK_RT $DCTK_RT_TAG $DCTK_RT_WORK" > "$OUT/run.info"
  dctk_rt_create_roles
  dctk_rt_write_cluster
  local i conf=$RT_WORK/cluster.conf ctl=$RT_BIN/tests/integration/cm_ctl
  for i in 0 1 2; do
    dctk_rt_spawn cm$i replica "$RT_BIN/tests/integration/cm_replica" --config="$conf" \
      --index=$i --state_out="$RT_WORK/cm$i.state"
  done
  save_host_pids
  local bind=(--bind="$(dctk_rt_ip client)" --config="$conf" --timeout=20s)
  dctk_rt_exec client "$ctl" "${bind[@]}" init 2 16777216 1000 >/dev/null || dctk_rt_die "cm_ctl init failed"
  for i in 0 1 2; do
    dctk_rt_exec client "$ctl" "${bind[@]}" join $((i + 1)) "$(dctk_rt_ip farm$i):7100" \
      "$(dctk_rt_ip farm$i):7101" >/dev/null || dctk_rt_die "cm_ctl join $((i + 1)) failed"
  done
  dctk_rt_exec client "$ctl" "${bind[@]}" get > "$DCTK_RT_WORK/get.txt" || dctk_rt_die "cm_ctl get failed"
  (( $(grep -c '^machines {' "$DCTK_RT_WORK/get.txt") == 3 )) || dctk_rt_die "get: not 3 machines"
  grep -q "endpoint: \"$(dctk_rt_ip farm2):7100\"" "$DCTK_RT_WORK/get.txt" || dctk_rt_die "get: farm2 missing"
  # Every replica's state file catches up (heartbeats carry the commit).
  for i in 0 1 2; do
    local n
    for n in $(seq 200); do replica_has_machines "$DCTK_RT_WORK/cm$i.state" && break; sleep 0.05; done
    replica_has_machines "$DCTK_RT_WORK/cm$i.state" || dctk_rt_die "replica cm$i: $(cat "$DCTK_RT_WORK/cm$i.state")"
  done
  for i in 0 1 2; do dctk_rt_stop cm$i replica; done
  for i in 1 2; do
    diff <(grep -v '^#' "$DCTK_RT_WORK/cm0.state") <(grep -v '^#' "$DCTK_RT_WORK/cm$i.state") >/dev/null ||
      dctk_rt_die "replicas cm0 and cm$i disagree"
  done
  echo "scenario normal: 3 replicas agree on 3 machines"
}

scenario_failure() {
  source "$RT"
  dctk_rt_init "$RUNTIME" "$BIN"
  echo "$DCTK_RT $DCTK_RT_TAG $DCTK_RT_WORK" > "$OUT/run.info"
  dctk_rt_create cm0 cm 2
  dctk_rt_create farm0 farm 3
  dctk_rt_spawn cm0 sleeper /bin/sleep 600
  save_host_pids
  dctk_rt_die "a step failed on purpose"
}

scenario_interrupt() {
  source "$RT"
  dctk_rt_init "$RUNTIME" "$BIN"
  echo "$DCTK_RT $DCTK_RT_TAG $DCTK_RT_WORK" > "$OUT/run.info"
  dctk_rt_create client client 2
  dctk_rt_create monitor monitor 3
  dctk_rt_spawn monitor sleeper /bin/sleep 600
  save_host_pids
  kill -INT $BASHPID
  sleep 5  # not reached: the INT trap exits
}

# netns processes are host processes: remember them to check they are gone.
save_host_pids() {
  [[ $DCTK_RT == netns ]] && cat "$DCTK_RT_WORK"/*.pid > "$OUT/host_pids"
  return 0
}

# Nothing of run $OUT/run.info may be left.
check_clean() {
  local what=$1 rt tag work
  read -r rt tag work < "$OUT/run.info"
  [[ -e $work ]] && fail "$what: work dir $work left"
  if [[ $rt == podman ]]; then
    [[ -n $(podman --runtime runc ps -a -q --filter "label=dctk=$tag") ]] && fail "$what: podman containers left"
    podman --runtime runc network exists "dctk-$tag" && fail "$what: podman network dctk-$tag left"
  else
    ip netns list | grep -q "^dctk-$tag" && fail "$what: namespaces dctk-$tag* left"
    ip link show "dctkbr$tag" >/dev/null 2>&1 && fail "$what: bridge dctkbr$tag left"
    local cg
    cg=$(findmnt -n -o TARGET -t cgroup2 | head -1)/dctk-${tag}monitor
    [[ -d $cg ]] && fail "$what: the monitor's cgroup $cg left"
    local pid
    for pid in $(cat "$OUT/host_pids" 2>/dev/null); do kill -0 "$pid" 2>/dev/null && fail "$what: process $pid left"; done
  fi
  pgrep -f "$work" >/dev/null && fail "$what: processes naming $work left"
  pgrep -f "dctk-$tag" >/dev/null && fail "$what: processes naming dctk-$tag left"
}

run() {
  local name=$1 expect=$2 rc
  rm -f "$OUT/run.info" "$OUT/host_pids"
  ( "scenario_$name" )
  rc=$?
  [[ $rc == "$expect" ]] || fail "scenario $name: exit status $rc, expected $expect"
  [[ -s $OUT/run.info ]] || { fail "scenario $name: did not start"; return; }
  check_clean "$name"
  echo "scenario $name: exit $rc, nothing left"
}

run normal 0
run failure 1
run interrupt 130
if (( FAILED )); then echo "runtime_test ($RUNTIME): FAILED"; exit 1; fi
echo "runtime_test ($RUNTIME): passed"
