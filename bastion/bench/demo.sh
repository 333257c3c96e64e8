#!/bin/bash
# Bastion demo: three containers (network namespaces) on a bridge, "web", "db" and
# "attacker"; the policy says only that web uses db on TCP 5432. Bastion's eBPF programs
# on each container's host-side veth let web's connection through (straight into db's
# namespace), and drop what the attacker tries, each drop printed with its reason in
# plain words as the kernel reports it. Needs root; takes about 15 s; deletes everything
# it made on exit, error or interrupt.
#
#   bazel run //bastion/bench:demo        # or: "$(bazel info bazel-bin)/bastion/bench/demo"
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "demo: needs root (network namespaces, eBPF)" >&2; exit 1; }
AGENT=${0}.runfiles/dctk/bastion/bench/bastion_demo_agent
[[ -x $AGENT ]] || AGENT=$PWD/bastion/bench/bastion_demo_agent  # bazel run's runfiles
[[ -x $AGENT ]] || { echo "demo: bastion_demo_agent not found" >&2; exit 1; }

TAG=bstd$$
H=${TAG}h
NET=10.217.0
declare -A IP=([web]=$NET.2 [db]=$NET.3 [attacker]=$NET.4)
declare -A MAC=([web]=02:00:00:00:00:02 [db]=02:00:00:00:00:03 [attacker]=02:00:00:00:00:04)
declare -A VETH=([web]=vweb [db]=vdb [attacker]=vatk)
WORK=$(mktemp -d /tmp/bastion-demo.XXXXXX)
AGENT_PID=""

cleanup() {
  if [[ -n $AGENT_PID ]]; then kill -TERM "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  local ns pid
  for ns in ${TAG}web ${TAG}db ${TAG}attacker $H; do
    [[ -e /run/netns/$ns ]] || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "demo interrupted: cleaning up"; exit 130' INT TERM HUP

say() { echo "   $*"; }
in_ct() { local ct=$1; shift; ip netns exec "${TAG}$ct" "$@"; }
connect() {  # connect FROM TO PORT: prints db's greeting, or why it failed
  in_ct "$1" /usr/bin/python3 -c '
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.8)
    print("connected, db says:", s.recv(100).decode().strip())
except OSError as e:
    print("connection failed:", type(e).__name__)' "${IP[$2]}" "$3"
}
# Prints the agent's new lines; waits (bounded) for at least one when a drop is expected.
SEEN=0
drops() {
  local i
  for i in $(seq 30); do
    (( $(wc -l < "$WORK/agent.log") > SEEN )) && break
    sleep 0.1
  done
  tail -n +$((SEEN + 1)) "$WORK/agent.log" | grep '^DROPPED' | sed 's/^/   bastion: /' || true
  SEEN=$(wc -l < "$WORK/agent.log")
}

echo "== Bastion demo: web may use db on TCP 5432; nothing else is allowed"
ip netns add $H
ip netns exec $H sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $H link add br0 type bridge
ip -n $H addr add $NET.1/24 dev br0
ip -n $H link set br0 up
specs=()
for ct in web db attacker; do
  ns=${TAG}$ct
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n $H link add "${VETH[$ct]}" type veth peer name eth0 netns "$ns"
  ip -n "$ns" link set eth0 address "${MAC[$ct]}"
  ip -n "$ns" addr add "${IP[$ct]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n $H link set "${VETH[$ct]}" master br0
  ip -n $H link set "${VETH[$ct]}" up
  specs+=("$ct:${VETH[$ct]}:${IP[$ct]}:${MAC[$ct]}")
  say "container $ct: ${IP[$ct]} (namespace $ns)"
done
ip netns exec $H "$AGENT" --gateway=$NET.1 --containers="$(IFS=,; echo "${specs[*]}")" \
  --allow=web:db:tcp:5432 > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for i in $(seq 100); do grep -q '^ready' "$WORK/agent.log" && break; sleep 0.1; done
grep -q '^ready' "$WORK/agent.log" || { cat "$WORK/agent.log"; exit 1; }
SEEN=1
say "Bastion's programs are on the three host-side veths; policy: web -> db tcp/5432"
in_ct db /usr/bin/python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5432)); s.listen(8); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello from db"); c.close()' > "$WORK/db.log" 2>&1 &
for i in $(seq 100); do grep -q listening "$WORK/db.log" && break; sleep 0.1; done

echo
echo "== 1. web connects to db on 5432 (allowed: delivered straight into db's namespace)"
say "web: $(connect web db 5432)"
drops
echo
echo "== 2. web tries db on port 22 (web uses db, but not on that port)"
say "web: $(connect web db 22)"
drops
echo
echo "== 3. the attacker connects to db on 5432 (db is not a dependency of the attacker)"
say "attacker: $(connect attacker db 5432)"
drops
echo
echo "== 4. the attacker sends a TCP SYN to db claiming web's address (spoofing)"
in_ct attacker /usr/bin/python3 -c '
import sys
from scapy.all import Ether, IP, TCP, sendp
sendp(Ether(src=sys.argv[1], dst=sys.argv[2]) / IP(src=sys.argv[3], dst=sys.argv[4]) /
      TCP(sport=40000, dport=5432, flags="S"), iface="eth0", verbose=False)' \
  "${MAC[attacker]}" "${MAC[db]}" "${IP[web]}" "${IP[db]}"
say "attacker: spoofed SYN sent"
drops
echo
echo "== Done: the allowed flow worked, every attempt of the attacker was dropped in the kernel."
