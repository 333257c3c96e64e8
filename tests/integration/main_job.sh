#!/bin/bash
# main_job.sh: the main job of dctk (issue 8, docs/INTEGRATION.md "Sequence"):
# Paxos-replicated FaRM over Bastion-secured containers, on this machine, step
# by step, saying in plain words what it does:
#   1. containers: the nine roles (cm0-2, farm0-2, client, attacker, monitor);
#   2. bastiond discovers them and enforces tests/integration/policy.yaml;
#   3. three CM replicas (Speculative Paxos), the CM service (cm_driver) whose
#      commands run on them, three FaRM machines (farmd, net fabric);
#   4. the client's workload (bank transfers), a progress line per second;
#   5. attacks from the attacker and the network-privileged monitor, each with
#      Bastion's verdict and drop reason from bastiond's event stream;
#   6. faults: the CM leader is killed (view change), later a FaRM primary
#      (recovery); the workload carries on;
#   7. a report (table + PNG of throughput over time, faults marked).
# Exit status 0 only if every check of the report holds. Everything it starts
# (containers, namespaces, bridge, BPF programs and pins, processes) is removed
# on success, on failure and on Ctrl-C (runtime.sh's EXIT trap).
#
#   tests/integration/main_job.sh [--runtime=auto|podman|netns] [--seconds=30 (at least)]
#       [--bin=DIR (skip the build)] [--out=DIR (report, plot, logs; default /tmp/dctk-main-job)]
#
# Needs root (namespaces, eBPF). The workload runs until the attacks, the CM
# leader kill and the FaRM primary kill are done and the throughput is back
# (a few seconds each), and at least --seconds; the CI version, main_job_test,
# runs the same steps and checks with the minimum.
set -uo pipefail

RUNTIME=auto SECONDS_TO_RUN=30 BIN= OUT=
for arg in "$@"; do
  case $arg in
    --runtime=*) RUNTIME=${arg#*=} ;;
    --seconds=*) SECONDS_TO_RUN=${arg#*=} ;;
    --bin=*) BIN=${arg#*=} ;;
    --out=*) OUT=${arg#*=} ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "main_job.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[[ $SECONDS_TO_RUN =~ ^[0-9]+$ ]] ||
  { echo "main_job.sh: --seconds must be a whole number of seconds (got '$SECONDS_TO_RUN')" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "main_job.sh: needs root (network namespaces, eBPF programs)" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-/tmp/dctk-main-job}
PY=/usr/bin/python3   # the system Python: python3-scapy

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
now() { date +%s.%N; }
mark() { printf '%s\t%s\t%s\n' "$(now)" "$1" "${2:-}" >> "$DCTK_RT_WORK/timeline.tsv"; }
fail() { printf '\n   \033[1mFAILED: %s\033[0m\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
step "1. Building the programs (bazel, offline)"
if [[ -z $BIN ]]; then
  (cd "$HERE/../.." && bazel build --noshow_progress //tests/integration:main_job_bins) > /tmp/dctk-main-job-build.$$.log 2>&1 ||
    { grep -v linux-sandbox /tmp/dctk-main-job-build.$$.log | tail -30; rm -f /tmp/dctk-main-job-build.$$.log; fail "the build failed (above)"; }
  rm -f /tmp/dctk-main-job-build.$$.log
  BIN=$(cd "$HERE/../.." && bazel info bazel-bin 2>/dev/null)
  say "built: bastiond, bastionctl, cm_replica, cm_driver, farmd, farm_workload"
else
  say "using the programs in $BIN"
fi
BIN=$(readlink -f "$BIN")
for p in tests/integration/cm_replica tests/integration/cm_driver tests/integration/netns_ct \
         farm/server/farmd farm/workload/farm_workload bastion/manager/bastiond bastion/cli/bastionctl; do
  [[ -x $BIN/$p ]] || fail "no $p under $BIN"
done

# ---------------------------------------------------------------------------
step "2. Containers: 3 CM replicas, 3 FaRM machines, a client, an attacker, a network-privileged monitor"
source "$HERE/runtime.sh"
BG_PIDS=()
dctk_on_cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # Processes in the containers go before bastiond, so it sees no half-gone flows.
  # (podman: pid files hold the containers' own pids; removing the containers stops them)
  if [[ $DCTK_RT == netns ]]; then
    for f in "$DCTK_RT_WORK"/*.pid; do [[ -e $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null; done
  fi
  if [[ -n ${BASTIOND_PID:-} ]]; then
    kill -TERM "$BASTIOND_PID" 2>/dev/null
    wait "$BASTIOND_PID" 2>/dev/null
  fi
  if [[ -n ${OUT:-} && -d ${DCTK_RT_WORK:-} ]]; then
    mkdir -p "$OUT/logs"
    cp "$DCTK_RT_WORK"/*.log "$DCTK_RT_WORK"/*.jsonl "$DCTK_RT_WORK"/*.tsv "$DCTK_RT_WORK"/*.state \
      "$DCTK_RT_WORK"/*.pcap "$DCTK_RT_WORK"/cluster.conf "$OUT/logs/" 2>/dev/null
  fi
}
dctk_rt_init "$RUNTIME" "$BIN"
say "runtime: $DCTK_RT ($( [[ $DCTK_RT == podman ]] && echo "real podman containers, busybox image, dctk binaries mounted read-only" || echo "dctk's namespace containers" ))"
mkdir -p "$OUT" && rm -rf "$OUT/logs" "$OUT/report.txt" "$OUT/throughput.png" "$OUT/throughput.dat"
dctk_rt_create_roles
dctk_rt_write_cluster
# The FaRM machines as the PRIMARY_BACKUP group farmd and cm_driver read
# (machine id = position + 1; f = 2 here only says "3 members": each region
# gets 2 copies, cm_driver --replicas=2).
# Timeouts for a 2-core machine that other work keeps busy: a replica that
# hears nothing from the leader for 1 s starts a view change; a FaRM machine
# or client whose lease (2 s, renewed every lease/3) runs out is removed.
sed -i 's/^timeouts .*/timeouts { request_ms: 50 heartbeat_ms: 20 view_change_ms: 1000 lease_ms: 2000 }/' \
  "$DCTK_RT_WORK/cluster.conf"
grep -q 'name: "farm"' "$DCTK_RT_WORK/cluster.conf" ||
  echo 'groups { name: "farm" replication: PRIMARY_BACKUP f: 2 members: ["farm0", "farm1", "farm2"] }' \
    >> "$DCTK_RT_WORK/cluster.conf"
# The CM's clients (cm_driver in cm0) send requests to the replicas through a
# MOM group: Bastion stamps each datagram's group sequence number and copies it
# to the members' veths (policy.yaml `groups:`), never onto the bridge.
CM_GROUP_IP=239.7.0.1  # also in policy.yaml's groups:
grep -q 'multicast_groups' "$DCTK_RT_WORK/cluster.conf" ||
  echo "multicast_groups { name: \"cm\" address: \"$CM_GROUP_IP:7000\" members: [\"cm0\", \"cm1\", \"cm2\"] senders: [\"cm0\"] }" \
    >> "$DCTK_RT_WORK/cluster.conf"
TAG=$DCTK_RT_TAG
# in_net NAME CMD... (net_prefix NAME: the command prefix that does it): a host
# program inside a container's network namespace
# (tcpdump, scapy, ip: the attacker with raw sockets; the containers' image is
# busybox only). bastion_name NAME: the container's name in bastiond's events.
if [[ $DCTK_RT == podman ]]; then
  declare -A CT_PID=()
  for c in cm0 cm1 cm2 farm0 farm1 farm2 client attacker; do
    CT_PID[$c]=$("${DCTK_RT_PODMAN[@]}" inspect -f '{{.State.Pid}}' "dctk-$TAG-$c")
  done
  net_prefix() { echo "nsenter --net=/proc/${CT_PID[$1]}/ns/net"; }
  bastion_name() { echo "dctk-$TAG-$1"; }
  BRIDGE=$("${DCTK_RT_PODMAN[@]}" network inspect "$DCTK_RT_NET" -f '{{.NetworkInterface}}')
  GATEWAY=$("${DCTK_RT_PODMAN[@]}" network inspect "$DCTK_RT_NET" -f '{{range .Subnets}}{{.Gateway}}{{end}}')
  SUBNET=$("${DCTK_RT_PODMAN[@]}" network inspect "$DCTK_RT_NET" -f '{{range .Subnets}}{{.Subnet}}{{end}}')
  say "podman containers on network $DCTK_RT_NET (bridge $BRIDGE, $SUBNET); the monitor runs with --network host"
else
  net_prefix() { echo "ip netns exec dctk-$TAG$1"; }
  bastion_name() { echo "$TAG$1"; }
  BRIDGE=$DCTK_RT_BRIDGE GATEWAY=$DCTK_RT_PREFIX.1 SUBNET=$DCTK_RT_PREFIX.0/24
  say "namespace containers on bridge $BRIDGE ($SUBNET); the monitor shares the host's network (host-mode container)"
fi
# (Both prefixes exec the program: in the background, $! is its pid.)
in_net() { local c=$1; shift; $(net_prefix "$c") "$@"; }
# (netlink, not /sys: nsenter --net keeps the host's sysfs)
mac_of() { in_net "$1" ip -o link show dev eth0 | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p'; }
# The monitor is a host-network container: no veth, its own cgroup; its
# processes join that cgroup (in_monitor CMD...), which is how Bastion tells
# them from the host's.
MONITOR_CGROUP=$(dctk_rt_cgroup monitor)
[[ -d $MONITOR_CGROUP ]] || fail "the monitor's cgroup '$MONITOR_CGROUP' is not there"
in_monitor() { /bin/sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$MONITOR_CGROUP" "$@"; }
SERVICE_IPS=$(for c in cm0 cm1 cm2 farm0 farm1 farm2 client; do printf '%s,' "$(dctk_rt_ip $c)"; done)

# ---------------------------------------------------------------------------
step "3. Bastion: bastiond discovers the containers and enforces the service's policy"
SOCK=unix:$DCTK_RT_WORK/bastiond.sock
ctl() { "$BIN/bastion/cli/bastionctl" --server="$SOCK" "$@"; }
# policy.yaml names FaRM's fixed ports: farmd's fabric 7100 and control
# 7101, the client threads' fabric endpoints 7100-7103.
POLICY=$HERE/policy.yaml
FARMD_PORTS=(--fabric_port=7100 --control_port=7101)
CLIENT_PORTS=(--fabric_port=7100)
if [[ $DCTK_RT == podman ]]; then
  # bastiond reads podman's containers through its Docker API, this run's only.
  podman system service --time=0 "unix://$DCTK_RT_WORK/podman.sock" > "$DCTK_RT_WORK/podman-service.log" 2>&1 &
  BG_PIDS+=($!)
  for _ in $(seq 100); do [[ -S $DCTK_RT_WORK/podman.sock ]] && break; sleep 0.1; done
  [[ -S $DCTK_RT_WORK/podman.sock ]] || fail "podman system service did not come up"
  SOURCES=(--docker_socket="$DCTK_RT_WORK/podman.sock" --label_filter="dctk=$TAG" --netns_dir="$DCTK_RT_WORK/none")
  say "bastiond discovers the podman containers labelled dctk=$TAG through podman's Docker API"
else
  SOURCES=(--netns_dir="$DCTK_RT_NETNS_DIR")
  say "bastiond discovers the namespace containers by their label files"
fi
"$BIN/bastion/manager/bastiond" --listen="$SOCK" --policy="$POLICY" "${SOURCES[@]}" \
  --pin_dir= --state_file= --cleanup_on_exit --poll_interval=100ms \
  > "$DCTK_RT_WORK/bastiond.log" 2>&1 &
BASTIOND_PID=$!
for _ in $(seq 200); do grep -qs 'bastiond: ready' "$DCTK_RT_WORK/bastiond.log" && break; sleep 0.05; done
grep -q 'bastiond: ready' "$DCTK_RT_WORK/bastiond.log" || fail "bastiond is not ready: $(tail -5 "$DCTK_RT_WORK/bastiond.log")"
# Enforced: the 8 bridge containers listed with their veth (bastiond
# attaches their tc programs in the round that lists them); the monitor listed
# as a host-network container (no address, no veth, NET host) and both of
# bastiond's cgroup programs on its cgroup.
monitor_programs() {  # how many of bastiond's cgroup programs the monitor's cgroup carries
  bpftool cgroup show "$MONITOR_CGROUP" 2>/dev/null | grep -cE '^ *[0-9]+ +(cgroup_inet_)?(egress|ingress) .*bastion_'
}
for _ in $(seq 100); do
  ctl containers > "$DCTK_RT_WORK/containers.txt" 2>&1
  missing=0
  for c in cm0 cm1 cm2 farm0 farm1 farm2 client attacker; do
    grep -Eq "^[0-9]+ +$(bastion_name $c) +[0-9.]+ +[0-9a-f:]+ +[1-9][0-9]* " "$DCTK_RT_WORK/containers.txt" || missing=$((missing + 1))
  done
  grep -Eq "^[0-9]+ +$(bastion_name monitor) +0\.0\.0\.0 +[0-9a-f:]+ +0 +host " "$DCTK_RT_WORK/containers.txt" &&
    (( $(monitor_programs) == 2 )) || missing=$((missing + 1))
  ((missing == 0)) && break
  sleep 0.1
done
((missing == 0)) || fail "bastiond did not enforce $missing container(s): $(cat "$DCTK_RT_WORK/containers.txt";
  echo "monitor cgroup $MONITOR_CGROUP:"; bpftool cgroup show "$MONITOR_CGROUP")"
sed 's/^/   /' "$DCTK_RT_WORK/containers.txt"
ctl policy show > "$DCTK_RT_WORK/policy.txt" || fail "bastionctl policy show failed"
say "all 9 containers enforced: 8 by programs on their veths, the host-network monitor by 2 programs on its"
say "cgroup $MONITOR_CGROUP; policy: $(head -1 "$DCTK_RT_WORK/policy.txt" | sed 's/.*: //')"
mark enforced "9 of 9"
# Bastion's verdict events, one JSON object per line, for the whole run.
ctl monitor --json > "$DCTK_RT_WORK/events.jsonl" 2> "$DCTK_RT_WORK/monitor.log" &
BG_PIDS+=($!)
for _ in $(seq 100); do grep -q 'monitoring verdict events' "$DCTK_RT_WORK/monitor.log" && break; sleep 0.05; done
grep -q 'monitoring verdict events' "$DCTK_RT_WORK/monitor.log" || fail "bastionctl monitor did not subscribe"
say "subscribed to bastiond's event stream (bastionctl monitor --json)"

# ---------------------------------------------------------------------------
step "4. FaRM's configuration manager: 3 Speculative Paxos replicas, and the CM service on them"
for i in 0 1 2; do
  dctk_rt_spawn cm$i replica "$RT_BIN/tests/integration/cm_replica" --config="$RT_WORK/cluster.conf" \
    --index=$i --mom_group=cm --state_out="$RT_WORK/cm$i.state"
done
state() { sed -n "s/^# $2: //p" "$DCTK_RT_WORK/$1.state" 2>/dev/null; }
leader_of() {  # the replica that says it leads in status normal
  local i
  for i in "$@"; do [[ $(state cm$i leader) == true && $(state cm$i status) == normal ]] && echo cm$i; done | head -1
}
for _ in $(seq 100); do [[ -n $(leader_of 0 1 2) ]] && break; sleep 0.05; done
[[ -n $(leader_of 0 1 2) ]] || fail "the CM replicas elected no leader"
say "replicas cm0-2 up (UDP 7000); leader $(leader_of 0 1 2), view $(state "$(leader_of 0 1 2)" view)"
CM_ADDR=$(dctk_rt_ip cm0):7101
dctk_rt_spawn cm0 driver "$RT_BIN/tests/integration/cm_driver" --config="$RT_WORK/cluster.conf" \
  --listen="$(dctk_rt_ip cm0)" --port=7101 --replicas=2 --regions=6 --region_mb=16 --mom_group=cm
for _ in $(seq 200); do grep -q "^cm " "$DCTK_RT_WORK/cm0.driver.log" && break; sleep 0.05; done
grep -q "^cm " "$DCTK_RT_WORK/cm0.driver.log" || fail "cm_driver did not start: $(tail -5 "$DCTK_RT_WORK/cm0.driver.log")"
say "CM service (cm_driver) in cm0 at $CM_ADDR: every membership, lease and placement command runs on the replicas"

# ---------------------------------------------------------------------------
step "5. FaRM: 3 machines (farmd, net fabric over the container network) register through Paxos"
for i in 0 1 2; do
  dctk_rt_spawn farm$i farmd "$RT_BIN/farm/server/farmd" --config="$RT_WORK/cluster.conf" --role=machine \
    --name=farm$i --cm="$CM_ADDR" --fabric=net "${FARMD_PORTS[@]}" --txlog_dir="$RT_WORK"
done
for _ in $(seq 300); do grep -q 'cluster ready' "$DCTK_RT_WORK/cm0.driver.log" && break; sleep 0.05; done
grep -q 'cluster ready' "$DCTK_RT_WORK/cm0.driver.log" ||
  fail "the CM never saw the 3 machines: $(tail -5 "$DCTK_RT_WORK/cm0.driver.log")"
say "machines joined, leases granted, 6 regions placed (2 copies each): $(grep -o 'configuration [0-9]*' "$DCTK_RT_WORK/cm0.driver.log" | tail -1)"
mark farm_ready

# ---------------------------------------------------------------------------
# A message unanswered for 1 s counts as lost (--rpc_timeout_ms: a busy
# machine's first messages can take a few hundred ms; the lease is 2 s).
# The workload runs until every phase is done (and at least --seconds): on
# a loaded 2-core machine the attacks take longer than on an idle one, and the
# faults must happen while it runs.
step "6. The client's workload: bank transfers and hashtable lookups, a progress line per second"
WORKLOAD=("$RT_BIN/farm/workload/farm_workload" --cm="$CM_ADDR" --host="$(dctk_rt_ip client)" --fabric=net
          --transfer_threads=2 --lookup_threads=1 --accounts=64 --rpc_timeout_ms=1000 "${CLIENT_PORTS[@]}")
[[ -x $BIN/farm/workload/farm_workload ]] || fail "no workload client (farm/workload/farm_workload) under $BIN"
say "the client joins the CM as a leased client, creates 64 accounts of 1000, then transfers money between"
say "them in transactions (2 threads) while a third thread reads balances with one-sided reads"
dctk_rt_spawn client workload "${WORKLOAD[@]}"
# Its clock (the progress lines' t=) starts when it prints "workload start",
# once the bank exists: the report's time axis starts there too.
for _ in $(seq 600); do
  grep -q '^workload start' "$DCTK_RT_WORK/client.workload.log" && break
  dctk_rt_alive client workload || fail "the workload client exited: $(tail -3 "$DCTK_RT_WORK/client.workload.log")"
  sleep 0.05
done
grep -q '^workload start' "$DCTK_RT_WORK/client.workload.log" || fail "the workload client did not start within 30 s"
mark workload_start
WORKLOAD_T0=$(now)
# The client's progress lines, as they come.
tail -s 0.2 -n +1 -f "$DCTK_RT_WORK/client.workload.log" 2>/dev/null > >(sed -u 's/^/   [client] /') &
TAIL_PID=$!
BG_PIDS+=($TAIL_PID)
progress_lines() { grep -c '^progress ' "$DCTK_RT_WORK/client.workload.log"; }
wait_progress() {  # N: waits until the client printed N more progress lines
  local want=$(( $(progress_lines) + $1 )) i
  for i in $(seq 600); do
    (( $(progress_lines) >= want )) && return 0
    ((i % 10)) || dctk_rt_alive client workload || fail "the workload client exited: $(tail -3 "$DCTK_RT_WORK/client.workload.log")"
    sleep 0.1
  done
  fail "the workload client printed no progress for 60 s"
}
wait_progress 3

# ---------------------------------------------------------------------------
step "7. Attacks, each with Bastion's verdict from its event stream"
source "$HERE/main_job_attacks.sh"
mark attacks_start
run_attacks
mark attacks_end
wait_progress 3

# ---------------------------------------------------------------------------
step "8. Fault: the CM replica leader is killed (Speculative Paxos view change)"
OLD_LEADER=$(leader_of 0 1 2)
[[ -n $OLD_LEADER ]] || fail "no CM leader to kill"
OLD_VIEW=$(state "$OLD_LEADER" view)
SURVIVORS=(); for i in 0 1 2; do [[ cm$i != "$OLD_LEADER" ]] && SURVIVORS+=("$i"); done
COMMIT_BEFORE=0
for i in "${SURVIVORS[@]}"; do c=$(state cm$i commit_point); ((c > COMMIT_BEFORE)) && COMMIT_BEFORE=$c; done
dctk_rt_signal "$OLD_LEADER" replica KILL
mark cm_kill "$OLD_LEADER"
KILL_T=$(now)
say "killed $OLD_LEADER (leader in view $OLD_VIEW, commit point $COMMIT_BEFORE)"
NEW_LEADER= VIEW_T= COMMIT_T=
for _ in $(seq 400); do
  if [[ -z $NEW_LEADER ]]; then
    NEW_LEADER=$(leader_of "${SURVIVORS[@]}")
    [[ -n $NEW_LEADER && $(state "$NEW_LEADER" view) -le $OLD_VIEW ]] && NEW_LEADER=
    [[ -n $NEW_LEADER ]] && { VIEW_T=$(now); mark cm_view_change "$NEW_LEADER"; }
  fi
  if [[ -n $NEW_LEADER ]] && (($(state "$NEW_LEADER" commit_point) > COMMIT_BEFORE)); then
    COMMIT_T=$(now); mark cm_next_commit "$NEW_LEADER"; break
  fi
  sleep 0.02
done
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
[[ -n $NEW_LEADER ]] || fail "no new CM leader within 8 s of killing $OLD_LEADER"
[[ -n $COMMIT_T ]] || fail "no CM command committed within 8 s of killing $OLD_LEADER"
say "new leader $NEW_LEADER in view $(state "$NEW_LEADER" view) after $(ms "$KILL_T" "$VIEW_T") ms;" \
    "next CM command committed $(ms "$KILL_T" "$COMMIT_T") ms after the kill (state files, 50 ms resolution)"

# ---------------------------------------------------------------------------
wait_progress 5
step "9. Fault: a FaRM primary machine is killed (lease expiry, backups promoted, recovery from the logs)"
# The machine that is primary of the most regions, from the replicated configuration.
PRIMARY=$(awk '/^regions/ { r = 1 } r && /machine:/ { print $2; r = 0 }' "$DCTK_RT_WORK/$NEW_LEADER.state" |
          sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
[[ -n $PRIMARY ]] || fail "no region primary in the configuration"
VICTIM=farm$((PRIMARY - 1))
REGIONS=$(awk -v m="$PRIMARY" '/^regions/ { r = 1 } /^  id:/ && r { id = $2 } r && /machine:/ { if ($2 == m) printf "%s ", id; r = 0 }' \
          "$DCTK_RT_WORK/$NEW_LEADER.state")
RECOVERIES=$(grep -c 'CM: recovered from' "$DCTK_RT_WORK/cm0.driver.log")
dctk_rt_signal "$VICTIM" farmd KILL
mark farm_kill "$VICTIM"
say "killed $VICTIM (machine $PRIMARY, primary of regions ${REGIONS:-?}); its backups take over when its lease runs out"
recovered() { (( $(grep -c 'CM: recovered from' "$DCTK_RT_WORK/cm0.driver.log") > RECOVERIES )); }
for _ in $(seq 200); do recovered && break; sleep 0.05; done
recovered || fail "the CM did not recover from the loss of $VICTIM within 10 s"
mark farm_recovered
say "$(grep -o 'CM: recovered from.*' "$DCTK_RT_WORK/cm0.driver.log" | tail -1)"

# ---------------------------------------------------------------------------
step "10. The workload finishes; the client checks the bank invariant"
wait_progress 5
left=$(awk -v t0="$WORKLOAD_T0" -v s="$SECONDS_TO_RUN" -v n="$(now)" 'BEGIN { l = t0 + s - n; print (l > 0 ? l : 0) }')
sleep "$left"
say "stopping the client: it settles its last transfers, audits the total, checks every ledger entry"
dctk_rt_signal client workload TERM
for _ in $(seq 600); do grep -q '^invariant ' "$DCTK_RT_WORK/client.workload.log" && break; sleep 0.1; done
grep -q '^invariant ' "$DCTK_RT_WORK/client.workload.log" || fail "the workload client did not finish within 60 s of SIGTERM"
mark workload_end
sleep 0.5   # the progress tail prints the last lines
kill "$TAIL_PID" 2>/dev/null

# ---------------------------------------------------------------------------
step "11. Report"
ctl counters > "$DCTK_RT_WORK/counters.txt" 2>&1
for i in 0 1 2; do dctk_rt_stop cm$i replica; done   # their exit line has their statistics
dctk_rt_stop cm0 driver
for i in 0 1 2; do dctk_rt_stop farm$i farmd; done
sleep 0.3
"$PY" "$HERE/main_job_report.py" report --work="$DCTK_RT_WORK" --out="$OUT" --attacker="$(bastion_name attacker)" \
  --monitor="$(bastion_name monitor)"
RC=$?
say "report: $OUT/report.txt, plot: $OUT/throughput.png, logs: $OUT/logs"
exit $RC
