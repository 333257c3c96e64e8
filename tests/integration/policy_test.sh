#!/bin/bash
# policy_test.sh: tests/integration/policy.yaml under the real bastiond, on the nine
# role containers (namespace runtime). bastiond must discover the containers,
# accept and compile the policy (42 container dependencies: client->farm 3,
# client->cm 3, farm->farm 6, farm->cm 9, farm->client 3, cm->cm 6, cm->farm 9,
# cm->group cm 3), and enforce it: the CM replicas reach each other and the FaRM machines register through
# Paxos, also after the CM leader is killed (view change), while the client,
# the attacker and the host-network monitor (a process in its cgroup) cannot
# reach the replicas' UDP port (bastionctl counters names the drops: the
# attacker cannot even resolve them, arp_no_dependency; the client may reach
# the cm containers on tcp/7101 only, policy_denied; the monitor depends on
# nothing, no_dependency at its cgroup).
# Needs root; skips otherwise.
set -uo pipefail
if [[ $(id -u) != 0 ]]; then echo "SKIPPED: needs root (namespaces, eBPF)"; exit 0; fi
BIN=$(readlink -f tests/integration/cm_replica)
BIN=${BIN%/tests/integration/cm_replica}
POLICY=$PWD/tests/integration/policy.yaml
BASTIOND=$PWD/bastion/manager/bastiond
BASTIONCTL=$PWD/bastion/cli/bastionctl
OUT=${TEST_TMPDIR:-$(mktemp -d)}

source tests/integration/runtime.sh
BASTIOND_PID=
dctk_on_cleanup() {
  [[ -n $BASTIOND_PID ]] || return 0
  kill -TERM "$BASTIOND_PID" 2>/dev/null
  wait "$BASTIOND_PID" || dctk_rt_say "bastiond exited with status $?"
  cp "$DCTK_RT_WORK/bastiond.log" "$OUT/" 2>/dev/null
}
dctk_rt_init netns "$BIN"
dctk_rt_create_roles
dctk_rt_write_cluster
SOCK=unix:$DCTK_RT_WORK/bastiond.sock
ctl() { "$BASTIONCTL" --server="$SOCK" "$@"; }

"$BASTIOND" --listen="$SOCK" --policy="$POLICY" --netns_dir="$DCTK_RT_NETNS_DIR" \
  --pin_dir= --state_file= --cleanup_on_exit --poll_interval=100ms \
  > "$DCTK_RT_WORK/bastiond.log" 2>&1 &
BASTIOND_PID=$!
for i in $(seq 200); do grep -q 'bastiond: ready' "$DCTK_RT_WORK/bastiond.log" && break; sleep 0.05; done
grep -q 'bastiond: ready' "$DCTK_RT_WORK/bastiond.log" || dctk_rt_die "bastiond not ready: $(cat "$DCTK_RT_WORK/bastiond.log")"

ctl containers > "$DCTK_RT_WORK/containers.txt" || dctk_rt_die "bastionctl containers failed"
cat "$DCTK_RT_WORK/containers.txt"
for name in cm0 cm1 cm2 farm0 farm1 farm2 client attacker; do
  grep -q "$DCTK_RT_TAG$name .*role=${DCTK_RT_ROLE[$name]}" "$DCTK_RT_WORK/containers.txt" ||
    dctk_rt_die "bastiond did not discover $name"
done
ctl policy validate "$POLICY" || dctk_rt_die "policy does not validate"
ctl policy show > "$DCTK_RT_WORK/policy.txt" || dctk_rt_die "bastionctl policy show failed"
head -1 "$DCTK_RT_WORK/policy.txt"
grep -q ': 42 dependencies' "$DCTK_RT_WORK/policy.txt" || dctk_rt_die "expected 42 dependencies"

for i in 0 1 2; do
  dctk_rt_spawn cm$i replica "$RT_BIN/tests/integration/cm_replica" --config="$RT_WORK/cluster.conf" \
    --index=$i --state_out="$RT_WORK/cm$i.state"
done
cm_ctl() {  # cm_ctl CONTAINER TIMEOUT ARGS...
  local ct=$1 timeout=$2 bind; shift 2
  bind=$(dctk_rt_ip "$ct")
  [[ $bind == host ]] && bind=0.0.0.0   # the host-network monitor: the host's addresses
  dctk_rt_exec "$ct" "$RT_BIN/tests/integration/cm_ctl" --config="$RT_WORK/cluster.conf" \
    --bind="$bind" --timeout="$timeout" "$@"
}
# Allowed: FaRM machines -> replicas (and replicas <-> replicas behind it).
cm_ctl farm0 20s init 2 16777216 1000 >/dev/null || dctk_rt_die "farm0: CM init through Bastion failed"
for i in 0 1 2; do
  cm_ctl farm$i 20s join $((i + 1)) "$(dctk_rt_ip farm$i):7100" >/dev/null ||
    dctk_rt_die "farm$i: join through Bastion failed"
done
echo "allowed: farm0-2 registered with the CM replicas"
# Fault: kill the CM leader; the machines renew their leases through the view change.
LEADER=
for i in 0 1 2; do grep -q '^# leader: true' "$DCTK_RT_WORK/cm$i.state" 2>/dev/null && LEADER=cm$i; done
[[ -n $LEADER ]] || dctk_rt_die "no CM leader in the state files"
dctk_rt_signal "$LEADER" replica KILL
for i in 0 1 2; do
  cm_ctl farm$i 20s renew $((i + 1)) >/dev/null || dctk_rt_die "farm$i: renew after killing $LEADER failed"
done
for i in 0 1 2; do
  [[ cm$i == "$LEADER" ]] && continue
  for n in $(seq 200); do grep -q '^# status: normal' "$DCTK_RT_WORK/cm$i.state" && ! grep -q '^# view: 0$' "$DCTK_RT_WORK/cm$i.state" && break; sleep 0.05; done
  grep -q '^# view: 0$' "$DCTK_RT_WORK/cm$i.state" && dctk_rt_die "cm$i did not change view"
done
echo "fault: killed CM leader $LEADER; view changed; farm0-2 renewed their leases through Bastion"
# Denied: nobody else may reach the replicas.
for ct in client attacker monitor; do
  if cm_ctl "$ct" 1s get >/dev/null 2>&1; then dctk_rt_die "$ct reached the CM replicas"; fi
  echo "denied: $ct cannot reach the CM replicas"
done
ctl counters > "$DCTK_RT_WORK/counters.txt" || dctk_rt_die "bastionctl counters failed"
sed -n '/uncovered flows/,$p' "$DCTK_RT_WORK/counters.txt"
# Bastion names the drops: the attacker cannot even resolve the replicas (ARP);
# the client depends on the cm containers for tcp/7101 only; the monitor on nothing.
declare -A EXPECT=([client]=policy_denied [attacker]=arp_no_dependency [monitor]=no_dependency)
for ct in client attacker monitor; do
  grep -Eq "^ +$DCTK_RT_TAG$ct -> ${DCTK_RT_TAG}cm[0-2] .*${EXPECT[$ct]}" \
    "$DCTK_RT_WORK/counters.txt" || dctk_rt_die "bastion reported no ${EXPECT[$ct]} drop from $ct to the replicas"
done
echo "policy_test: passed"
