#!/bin/bash
# Closed-loop benchmark on loopback UDP: unreplicated, VR (with and without
# batching), Fast Paxos (fastpaxos: requests to every replica, coordinator
# decides on three equal votes) and Speculative Paxos (clients sending a copy to each replica, one
# datagram to a loopback multicast group, or that datagram as a MOM packet
# through mom::MomSender / MomReceiver; spaxos-await: multicast with the
# client woken once per round, --await_replies), 3 replica processes (app=null),
# clients in up to 4 independent processes (so replicas see requests in
# naturally different orders). The clients of one process share an endpoint
# that batches the requests they issue together (client_endpoint.h), for every
# protocol; the -perclient rows give each client its own endpoint (no
# batching). Prints one row per (reorder rate, clients, protocol); the
# protocols alternate within each (rate, clients), so load from elsewhere
# hits them alike.
#
# REORDER="0 0.0001 0.01" repeats the rows per injected reorder rate: every
# replica holds back that share of the client request datagrams it receives
# for up to 50 us (spaxos_replica --inject_reorder, own seed per replica;
# not with spaxos-mom, whose rows are skipped then); held% is the share the
# replicas actually held (of the client datagrams they received), reord% the
# share actually reordered (a later datagram passed it while held). For
# Speculative Paxos, recon is the most reconciliations any replica went
# through and repairs the replicas' order repairs (their exit lines).
#
#   bazel build -c opt //speculative_paxos/tools:all
#   speculative_paxos/bench/run_bench.sh [bazel-bin dir] [seconds]
# PROTOCOLS="vr spaxos" CLIENTS="4 16" restrict the rows.
set -euo pipefail
BIN=${1:-bazel-bin/speculative_paxos/tools}
SECS=${2:-3}
PROTOCOLS=${PROTOCOLS:-unreplicated vr vr-batch16 vr-perclient fastpaxos spaxos spaxos-perclient spaxos-mcast spaxos-await spaxos-mom}
CLIENTS=${CLIENTS:-1 4 16 64}
REORDER=${REORDER:-0}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$DIR"' EXIT

port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cat > "$DIR/shard.conf" <<CONF
nodes { name: "r0" address: "127.0.0.1:$(port)" }
nodes { name: "r1" address: "127.0.0.1:$(port)" }
nodes { name: "r2" address: "127.0.0.1:$(port)" }
nodes { name: "clients" address: "127.0.0.1:0" }
groups { name: "shard0" f: 1 members: ["r0", "r1", "r2"] }
multicast_groups { name: "ordered" address: "239.255.$(( $$ % 250 )).$(( ($$ / 250) % 250 + 1 )):$(port)"
                   members: ["r0", "r1", "r2"] senders: ["clients"] }
timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 200 }
CONF

printf "%-9s %-14s %7s %12s %9s %9s %8s %8s %8s %7s %8s\n" "reorder%" protocol clients "ops/s" \
  "p50(us)" "p99(us)" "slow%" "held%" "reord%" "recon" "repairs"
for rate in $REORDER; do
  inject=""; [ "$rate" = 0 ] || inject="--inject_reorder=$rate"
  for clients in $CLIENTS; do
    for proto in $PROTOCOLS; do
      [ -n "$inject" ] && [ "$proto" = spaxos-mom ] && continue
      p=${proto%-batch16}; p=${p%-mcast}; p=${p%-mom}; p=${p%-perclient}; p=${p%-await}
      shared=--shared_endpoint; [ "$proto" != "$p-perclient" ] || shared=--noshared_endpoint
      batch=1; [ "$proto" = vr-batch16 ] && batch=16
      mcast=""; [ "$proto" = spaxos-mcast ] && mcast="--multicast=ordered"
      [ "$proto" = spaxos-mom ] && mcast="--multicast=ordered --mom"
      await=""; [ "$proto" = spaxos-await ] && mcast="--multicast=ordered" && await="--await_replies"
      pids=()
      n=3; [ "$p" = unreplicated ] && n=1
      for ((i = 0; i < n; i++)); do
        "$BIN/spaxos_replica" --config="$DIR/shard.conf" --index=$i --protocol=$p --app=null \
          --batch=$batch $mcast $inject 2>"$DIR/r$i.log" &
        pids+=($!)
      done
      sleep 0.3
      procs=$(( clients < 4 ? clients : 4 ))
      per=$(( clients / procs ))
      cpids=()
      for ((j = 0; j < procs; j++)); do
        "$BIN/spaxos_client" --config="$DIR/shard.conf" --protocol=$p --clients=$per $mcast $shared $await \
          --warmup=1s --duration=${SECS}s >"$DIR/c$j.out" 2>"$DIR/c$j.err" &
        cpids+=($!)
      done
      wait "${cpids[@]}"
      kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
      # Sum of throughputs; latency: median of the processes' p50, max of their p99.
      field() { grep -ho "$1=[0-9.]*" "$DIR"/c*.out | cut -d= -f2; }
      tput=$(field throughput | awk '{s += $1} END {printf "%.0f", s}')
      p50=$(field p50_us | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
      p99=$(field p99_us | sort -n | tail -1)
      slow="-" recon="-" repairs="-"
      if [ "$p" = spaxos ]; then
        slow=$(paste <(field fast) <(field slow) | awk '{f += $1; s += $2} END {printf "%.1f", 100 * s / (f + s)}')
        # Replicas' exit lines: reconciliations (most any replica took part in), order repairs (sum).
        recon=$(grep -ho "reconciliations [0-9]*" "$DIR"/r*.log | awk '$2 > m {m = $2} END {print m + 0}')
        repairs=$(grep -ho "order_repairs [0-9]*" "$DIR"/r*.log | awk '{s += $2} END {print s + 0}')
      fi
      held="-" reord="-"
      if [ -n "$inject" ]; then
        counts=$(grep -ho "client_datagrams [0-9]* held [0-9]* overtaken [0-9]*" "$DIR"/r*.log |
          awk '{d += $2; h += $4; o += $6} END {printf "%.4f %.4f", d ? 100 * h / d : 0, d ? 100 * o / d : 0}')
        read -r held reord <<<"$counts"
      fi
      printf "%-9s %-14s %7d %12s %9s %9s %8s %8s %8s %7s %8s\n" \
        "$(awk -v r="$rate" 'BEGIN {printf "%.3f", 100 * r}')" "$proto" "$clients" "$tput" "$p50" \
        "$p99" "$slow" "$held" "$reord" "$recon" "$repairs"
      rm -f "$DIR"/c*.out "$DIR"/r*.log
    done
  done
done
