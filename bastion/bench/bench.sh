#!/bin/bash
# Throughput and latency between two namespace containers (A client, B server) on a Linux
# bridge, under: no enforcement (plain bridge); iptables with N rules through br_netfilter
# (the Docker/Kubernetes way), legacy x_tables and the nftables backend, stateless (every
# packet walks the chain) and with an ESTABLISHED,RELATED accept first (only new
# connections walk it); and Bastion with N policies (direct forwarding, veth to veth).
# iperf3 (one TCP stream) gives throughput; sockperf ping-pong (64 B, TCP and UDP) gives
# latency, as sockperf reports it: half the round trip, in microseconds; tcp_crr (connect,
# 1-byte request and reply, close; netperf TCP_CRR style) gives new connections per second,
# which is what a conntrack-first chain still walks.
#
#   bazel run //bastion/bench:bench                      # as root; all configurations
#   bazel run //bastion/bench:bench -- -t 10 -r 5 -c "bridge bastion:10000 iptables-nft:10000"
#
# -t seconds per measurement (default 4), -r rounds (default 3): every round runs every
# configuration once, in order, so slow drifts of this shared machine hit all of them;
# the table at the end has the median over rounds of each number.
#
# Every configuration gets a fresh topology (namespaces bstb<pid>{h,a,b}); everything is
# deleted when a configuration ends, and on exit, error or interrupt (trap).
set -euo pipefail

DURATION=4
ROUNDS=3
CONFIGS="bridge iptables-legacy:1000 iptables-legacy:5000 iptables-legacy:10000
iptables-nft:1000 iptables-nft:5000 iptables-nft:10000 iptables-legacy-ct:10000
iptables-nft-ct:10000 bastion:1000 bastion:5000 bastion:10000"
while getopts "t:r:c:" opt; do
  case $opt in
    t) DURATION=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    c) CONFIGS=$OPTARG ;;
    *) echo "usage: $0 [-t seconds] [-r rounds] [-c \"bridge iptables-nft:N ...\"]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || { echo "bench.sh: needs root (namespaces, iptables, BPF)" >&2; exit 1; }
for tool in iperf3 sockperf iptables-legacy-restore iptables-nft-restore; do
  command -v $tool >/dev/null || { echo "bench.sh: $tool not installed" >&2; exit 1; }
done
find_tool() {  # next to this script in its runfiles, or under bazel run's working directory
  local path=${0}.runfiles/dctk/bastion/bench/$1
  [[ -x $path ]] || path=$PWD/bastion/bench/$1
  [[ -x $path ]] || { echo "bench.sh: $1 not found" >&2; return 1; }
  echo "$path"
}
ENFORCER=$(find_tool bastion_enforcer)
CRR=$(find_tool tcp_crr)

TAG=bstb$$
H=${TAG}h A=${TAG}a B=${TAG}b
NET=10.216.0 IP_A=10.216.0.2 IP_B=10.216.0.3
MAC_A=02:00:00:00:00:02 MAC_B=02:00:00:00:00:03
IPERF_PORT=5201 PP_PORT=11111 CRR_PORT=12000
WORK=$(mktemp -d /tmp/bastion-bench.XXXXXX)
ENFORCER_PID=""
MEASURE_PID=""

teardown() {
  if [[ -n $MEASURE_PID ]]; then kill -TERM "$MEASURE_PID" 2>/dev/null || true; MEASURE_PID=""; fi
  if [[ -n $ENFORCER_PID ]]; then
    kill -TERM "$ENFORCER_PID" 2>/dev/null || true
    wait "$ENFORCER_PID" 2>/dev/null || true
    ENFORCER_PID=""
  fi
  local ns pid
  for ns in $A $B $H; do
    [[ -e /run/netns/$ns ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
cleanup() {
  teardown
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Host namespace with br0 (the gateway) and containers A, B on veths vA, vB.
setup() {
  ip netns add $H
  ip netns exec $H sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n $H link add br0 type bridge
  ip -n $H addr add $NET.1/24 dev br0
  ip -n $H link set br0 up
  ip -n $H link set lo up
  local name ns mac ip
  for name in a b; do
    ns=${TAG}$name
    if [[ $name == a ]]; then mac=$MAC_A ip=$IP_A; else mac=$MAC_B ip=$IP_B; fi
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n $H link add "v$name" type veth peer name eth0 netns "$ns"
    ip -n "$ns" link set eth0 address $mac
    ip -n "$ns" addr add $ip/24 dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via $NET.1
    ip -n $H link set "v$name" master br0
    ip -n $H link set "v$name" up
  done
  ip netns exec $B iperf3 -s -p $IPERF_PORT >/dev/null 2>&1 &
  ip netns exec $B sockperf sr --tcp -i $IP_B -p $PP_PORT >/dev/null 2>&1 &
  ip netns exec $B sockperf sr -i $IP_B -p $PP_PORT >/dev/null 2>&1 &
  ip netns exec $B "$CRR" server $CRR_PORT >/dev/null 2>&1 &
  disown -a  # killed by namespace in teardown; no job notices
  local i
  for i in $(seq 100); do  # servers listening (bounded wait)
    if ip netns exec $B ss -ltn | grep -q ":$IPERF_PORT " &&
       ip netns exec $B ss -ltn | grep -q ":$PP_PORT " &&
       ip netns exec $B ss -lun | grep -q ":$PP_PORT " &&
       ip netns exec $B ss -ltn | grep -q ":$CRR_PORT "; then return 0; fi
    sleep 0.1
  done
  echo "bench.sh: servers did not start" >&2; return 1
}

# iptables rules file: N rules in FORWARD, the flow's own allows last (default DROP).
iptables_rules() {
  local n=$1 stateful=$2
  python3 - "$n" "$stateful" "$IP_A" "$IP_B" "$IPERF_PORT" "$PP_PORT" "$CRR_PORT" <<'PY'
import sys
n, stateful, a, b, iperf, pp, crr = int(sys.argv[1]), sys.argv[2] == "1", *sys.argv[3:]
own = [f"-s {a} -d {b} -p tcp --dport {iperf}", f"-s {a} -d {b} -p tcp --dport {pp}",
       f"-s {a} -d {b} -p udp --dport {pp}", f"-s {a} -d {b} -p tcp --dport {crr}"]
if stateful:
    first = ["-m conntrack --ctstate ESTABLISHED,RELATED"]
else:  # replies need their own rules
    first = []
    own += [f"-s {b} -d {a} -p tcp --sport {iperf}", f"-s {b} -d {a} -p tcp --sport {pp}",
            f"-s {b} -d {a} -p udp --sport {pp}", f"-s {b} -d {a} -p tcp --sport {crr}"]
print("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]")
for r in first:
    print(f"-A FORWARD {r} -j ACCEPT")
for i in range(n - len(own) - len(first)):
    print(f"-A FORWARD -s 10.100.{i // 250}.{i % 250 + 1} -d 10.101.{i // 250}.{i % 250 + 1}"
          f" -p tcp --dport {1000 + i % 60000} -j ACCEPT")
for r in own:
    print(f"-A FORWARD {r} -j ACCEPT")
print("COMMIT")
PY
}

# Puts the configuration's enforcement in place; prints what it installed.
enforce() {
  local mode=$1 n=$2
  case $mode in
    bridge) echo "no enforcement" ;;
    iptables-legacy|iptables-nft|iptables-legacy-ct|iptables-nft-ct)
      local backend=${mode#iptables-} stateful=0
      [[ $backend == *-ct ]] && stateful=1 backend=${backend%-ct}
      ip -n $H link set br0 type bridge nf_call_iptables 1
      iptables_rules "$n" $stateful > "$WORK/rules"
      ip netns exec $H "iptables-$backend-restore" < "$WORK/rules"
      echo "$(ip netns exec $H "iptables-$backend-save" | grep -c -- '-A FORWARD') FORWARD rules ($backend)"
      ;;
    bastion)
      ip netns exec $H "$ENFORCER" --policies="$n" --client=va,$IP_A,$MAC_A \
        --server=vb,$IP_B,$MAC_B --tcp_ports=$IPERF_PORT,$PP_PORT,$CRR_PORT --udp_ports=$PP_PORT \
        > "$WORK/enforcer.log" 2>&1 &
      ENFORCER_PID=$!
      local i
      for i in $(seq 3000); do  # bounded wait for the policies to be installed
        grep -q "^ready" "$WORK/enforcer.log" && { grep "^ready" "$WORK/enforcer.log"; return 0; }
        kill -0 $ENFORCER_PID 2>/dev/null || break
        sleep 0.1
      done
      cat "$WORK/enforcer.log" >&2; return 1
      ;;
    *) echo "bench.sh: unknown mode $mode" >&2; return 1 ;;
  esac
}

# sockperf ping-pong summary: "avg p50 p99" (usec, half round trip).
pingpong() {
  ip netns exec $A sockperf pp "$@" -i $IP_B -p $PP_PORT -t "$DURATION" -m 64 2>&1 |
    python3 -c '
import re, sys
t = sys.stdin.read()
avg = re.search(r"avg-latency=([\d.]+)", t)
p50 = re.search(r"percentile 50.000 =\s*([\d.]+)", t)
p99 = re.search(r"percentile 99.000 =\s*([\d.]+)", t)
print(" ".join(m.group(1) if m else "n/a" for m in (avg, p50, p99)))'
}

measure() {
  local gbps tcp udp
  gbps=$(ip netns exec $A iperf3 -c $IP_B -p $IPERF_PORT -t "$DURATION" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
  tcp=$(pingpong --tcp)
  udp=$(pingpong)
  crr=$(ip netns exec $A "$CRR" client $IP_B $CRR_PORT "$DURATION" | cut -d' ' -f1)
  echo "$gbps $tcp $udp $crr"
}

echo "# $ROUNDS rounds x $(echo $CONFIGS | wc -w) configurations, ${DURATION} s per measurement"
for round in $(seq "$ROUNDS"); do
  for config in $CONFIGS; do
    mode=${config%%:*} n=0
    [[ $config == *:* ]] && n=${config#*:}
    setup
    enforce "$mode" "$n" > "$WORK/what"  # not in a subshell: it may start the enforcer
    # In the background: `wait` returns at once on a signal, so the trap runs at once.
    measure > "$WORK/measure" &
    MEASURE_PID=$!
    wait $MEASURE_PID
    MEASURE_PID=""
    result="$mode $n $(cat "$WORK/measure")"
    echo "$result" >> "$WORK/results"
    echo "round $round: $result   ($(cat "$WORK/what"))"
    if [[ $mode == bastion ]]; then
      kill -TERM "$ENFORCER_PID"; wait "$ENFORCER_PID" || true; ENFORCER_PID=""
      echo "    bastion verdicts: $(grep "^counter" "$WORK/enforcer.log" | cut -d' ' -f2- | tr '\n' ' ')"
    fi
    teardown
  done
done

python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault((f[0], f[1]), []).append([float(x) if x != "n/a" else float("nan") for x in f[2:]])
print()
print("| config | rules/policies | TCP Gbit/s | TCP RR avg | p50 | p99 | UDP RR avg | p50 | p99 | TCP CRR conn/s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (mode, n), runs in rows.items():
    med = [statistics.median(col) for col in zip(*runs)]
    print(f"| {mode} | {n} | {med[0]:.2f} | " + " | ".join(f"{v:.1f}" for v in med[1:7]) +
          f" | {med[7]:.0f} |")
print(f"\nmedians of {len(next(iter(rows.values())))} runs; RR latencies in us, half round trip (sockperf)")
PY
