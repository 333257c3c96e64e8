# main_job_attacks.sh: step 7 of the main job (sourced by main_job.sh, bash).
#
# The attacker (a container in no service of the policy) and the
# network-privileged monitor try what an intruder on the container network
# would: learn who is there, impersonate a FaRM machine, eavesdrop, reach the
# service's ports, poison ARP caches. Each attack prints what the attacker got
# and Bastion's verdict with the drop reason, read from bastiond's event stream
# (events.jsonl, written by `bastionctl monitor --json`): the events named by
# the attacking container (the attacker's veth, or the monitor's cgroup
# programs) between the attack's start and end. Each row goes to attacks.tsv
# for the report: name, what it tried, expected verdict (regex, or "-" when
# nothing is sent), what the attacker got, defeated (1/0), verdict summary.
#
# The attacker's programs are the host's (scapy, tcpdump, ip) run inside its
# network namespace (in_net): an attacker with raw sockets. The monitor's run
# in the host's network namespace inside its cgroup (in_monitor), as a
# process of that host-network container.
# Needs from main_job.sh: PY, HERE, BRIDGE, GATEWAY, SUBNET, SERVICE_IPS, in_net,
# in_monitor, bastion_name, mac_of, dctk_rt_ip, ctl, say, now, DCTK_RT_WORK.

ATTACKER_TOOL=("$PY" "$HERE/attack_tool.py")
ATTACKS_TSV=$DCTK_RT_WORK/attacks.tsv

# The attacker's commands run in its container.
atk() { in_net attacker "${ATTACKER_TOOL[@]}" "$@" 2>&1 | grep '^result' | tail -1 | sed 's/^result //'; }
events_now() { wc -l < "$DCTK_RT_WORK/events.jsonl"; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<< "$2"; }
verdicts_between() {  # FROM TO [WHO]: WHO's (default: the attacker's) drops in events.jsonl lines FROM+1..TO
  awk -v from="$1" -v to="$2" -v c="\"container\":\"$(bastion_name "${3:-attacker}")\"" '
    NR > from && NR <= to && index($0, c) && index($0, "\"to_container\":false") &&
    match($0, /"verdict":"[a-z_0-9]+"/) { n[substr($0, RSTART + 11, RLENGTH - 12)]++ }
    END { for (v in n) printf "%s DROP %s x%d", (k++ ? "," : ""), v, n[v] }' "$DCTK_RT_WORK/events.jsonl" | sed 's/^ //'
}
forwarded_now() { ctl counters 2>/dev/null | awk '$1 == "forwarded" { print $2 }'; }

# record NAME WHAT EXPECT GOT DEFEATED FROM [WHO]: waits for the stream to
# catch up, prints the attack's line and appends its row (WHO: the attacking
# container, default the attacker).
record() {
  local name=$1 what=$2 expect=$3 got=$4 defeated=$5 from=$6 who=${7:-attacker} to verdicts
  sleep 0.3
  to=$(events_now)
  verdicts=$(verdicts_between "$from" "$to" "$who")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$what" "$expect" "$got" "$defeated" "$verdicts" >> "$ATTACKS_TSV"
  say "$what ($(awk -v a="$ATTACK_T" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s)"
  say "  $who got: $got"
  ATTACK_T=$(now)
  say "  Bastion: ${verdicts:-no drop event}$( ((defeated)) && echo '  => blocked' || echo '  => NOT BLOCKED')"
}

# capture_start CONTAINER IFACE FILTER PCAP: tcpdump in a container (the
# monitor: in the host's network, in its cgroup), in the background;
# capture_stop stops it.
CAPTURE_PIDS=()
capture_start() {
  local where=$1 iface=$2 filter=$3 pcap=$4
  if [[ $where == monitor ]]; then
    in_monitor tcpdump -i "$iface" -nn -U -w "$pcap" "$filter" 2>/dev/null &
  else
    $(net_prefix "$where") tcpdump -i "$iface" -nn -U -w "$pcap" "$filter" 2>/dev/null &
  fi
  CAPTURE_PIDS+=($!)
  BG_PIDS+=($!)
}
capture_stop() {
  local p
  sleep 0.2
  for p in "${CAPTURE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${CAPTURE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  CAPTURE_PIDS=()
}
capture_stop_sniffers() { CAPTURE_PIDS=("${SNIFF_PIDS[@]}"); capture_stop; SNIFF_PIDS=(); }
captured() { tcpdump -nn -r "$1" 2>/dev/null | wc -l; }

run_attacks() {
  local from got n ip mac
  local farm0=$(dctk_rt_ip farm0) farm1=$(dctk_rt_ip farm1) cm0=$(dctk_rt_ip cm0)
  local farm0_mac farm1_mac cm0_mac attacker_mac
  farm0_mac=$(mac_of farm0) farm1_mac=$(mac_of farm1) cm0_mac=$(mac_of cm0) attacker_mac=$(mac_of attacker)
  : > "$ATTACKS_TSV"
  ATTACK_T=$(now)
  # The sniffers (attacks 8 and 9) listen during all the others.
  local fwd0 sniff_t0
  fwd0=$(forwarded_now)
  sniff_t0=$(now)
  capture_start attacker eth0 "" "$DCTK_RT_WORK/sniff_attacker.pcap"
  capture_start monitor "$BRIDGE" "" "$DCTK_RT_WORK/sniff_monitor.pcap"
  SNIFF_PIDS=("${CAPTURE_PIDS[@]}")
  CAPTURE_PIDS=()

  # 1. Reconnaissance.
  from=$(events_now)
  got=$(atk arp-scan --net="$SUBNET" --timeout=1)
  local ok=0
  # Only the gateway (the host's address on the bridge) may answer.
  [[ $(field answered "$got") == 0 || ( $(field answered "$got") == 1 && $(field who "$got") == "$GATEWAY" ) ]] && ok=1
  record arp_scan "ARP scan of $SUBNET from the attacker" arp_no_dependency \
    "$(field answered "$got") of $(field asked "$got") addresses answered ($(field who "$got"))" "$ok" "$from"

  # 2. Reaching the service's ports (it cannot even resolve them).
  from=$(events_now)
  got=$(in_net attacker "${ATTACKER_TOOL[@]}" connect \
          --to="$farm0:7100/tcp,$farm0:7101/tcp,$cm0:7101/tcp,$cm0:7000/udp" 2>&1 | grep -c 'connected=1')
  record connect "attacker connects to farm0 tcp/7100 (fabric), tcp/7101 (control), cm0 tcp/7101 (CM service), udp/7000 (replica)" \
    arp_no_dependency "$got of 4 reached" "$(( got == 0 ))" "$from"

  # 3. The same with the peers' MACs guessed (static neighbour entries: no ARP needed).
  in_net attacker ip neigh replace "$farm0" lladdr "$farm0_mac" dev eth0 nud permanent
  in_net attacker ip neigh replace "$cm0" lladdr "$cm0_mac" dev eth0 nud permanent
  from=$(events_now)
  got=$(in_net attacker "${ATTACKER_TOOL[@]}" connect --to="$farm0:7100/tcp,$cm0:7000/udp" 2>&1 | grep -c 'connected=1')
  record connect_static_arp "attacker connects to farm0 tcp/7100 and cm0 udp/7000 with their MACs set by hand" \
    no_dependency "$got of 2 reached" "$(( got == 0 ))" "$from"

  # 3b. Multicasting to the CM's MOM group: only the cm service depends on it,
  # so Bastion drops the attacker's datagram before it is stamped or copied.
  from=$(events_now)
  got=$(in_net attacker "${ATTACKER_TOOL[@]}" connect --to="$CM_GROUP_IP:7000/udp" 2>&1 | grep -c 'connected=1')
  record group_send "attacker multicasts to the CM's MOM group $CM_GROUP_IP udp/7000" \
    no_dependency "$got of 1 answered" "$(( got == 0 ))" "$from"

  # 4. The network-privileged monitor reaches for the same ports from the
  # host's network: a process of the monitor (in its cgroup) connects. Its
  # cgroup's egress program drops the first packet (no_dependency), so the
  # sender gets EPERM; the host's own network stays open to it.
  from=$(events_now)
  got=$(in_monitor "${ATTACKER_TOOL[@]}" connect \
          --to="$farm0:7100/tcp,$farm0:7101/tcp,$cm0:7101/tcp,$cm0:7000/udp" 2>&1 | grep -c 'connected=1')
  record monitor_connect "monitor (host network, its cgroup) connects to farm0 tcp/7100, tcp/7101, cm0 tcp/7101, udp/7000" \
    no_dependency "$got of 4 reached" "$(( got == 0 ))" "$from" monitor

  # 5. IP spoofing: datagrams "from farm0" to the replica port farm0 may use.
  capture_start cm0 eth0 "ether src $attacker_mac" "$DCTK_RT_WORK/spoof_ip.pcap"
  sleep 0.3
  from=$(events_now)
  atk spoof --dst="$cm0" --dst-mac="$cm0_mac" --dport=7000 --src-ip="$farm0" --count=5 >/dev/null
  capture_stop
  n=$(captured "$DCTK_RT_WORK/spoof_ip.pcap")
  record spoof_ip "IP spoofing: 5 UDP datagrams to cm0:7000 with farm0's source IP (allowed for farm0)" spoofed_ip \
    "$n of 5 arrived in cm0" "$(( n == 0 ))" "$from"

  # 6. MAC spoofing: the attacker's IP with farm0's MAC, to farm1.
  capture_start farm1 eth0 "src host $(dctk_rt_ip attacker)" "$DCTK_RT_WORK/spoof_mac.pcap"
  sleep 0.3
  from=$(events_now)
  atk spoof --dst="$farm1" --dst-mac="$farm1_mac" --dport=7100 --src-mac="$farm0_mac" --count=5 >/dev/null
  capture_stop
  n=$(captured "$DCTK_RT_WORK/spoof_mac.pcap")
  record spoof_mac "MAC spoofing: 5 frames to farm1 with farm0's MAC" spoofed_mac \
    "$n of 5 arrived in farm1" "$(( n == 0 ))" "$from"

  # 7. ARP poisoning: "farm0 is at the attacker's MAC", to farm1 and to everyone.
  from=$(events_now)
  atk arp-poison --victim="$farm1" --victim-mac="$farm1_mac" --claim="$farm0" --count=3 >/dev/null
  sleep 0.2
  if in_net farm1 ip neigh show | grep -qi "$attacker_mac"; then n=1; else n=0; fi
  record arp_poison "ARP poisoning: forged replies and gratuitous ARP claiming farm0's IP" arp_spoofed \
    "$( ((n)) && echo "farm1's ARP cache maps an address to the attacker's MAC" || echo "no ARP cache points at the attacker")" \
    "$(( n == 0 ))" "$from"

  # 8-9. Eavesdropping: the sniffers ran during attacks 1-7 while the
  # workload ran. The attacker's own ARP for the gateway (allowed: it goes to
  # the host) shows that both sniffers capture what does pass their way.
  in_net attacker busybox arping -c 2 -w 1 "$GATEWAY" >/dev/null 2>&1
  local sniff_s fwd1
  sniff_s=$(awk -v a="$sniff_t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')
  from=$(events_now)
  capture_stop_sniffers
  fwd1=$(forwarded_now)
  local who
  for who in attacker monitor; do
    # (the group address too: a copy of a CM request on the bridge would count)
    got=$("$PY" "$HERE/attack_tool.py" sniff-count --pcap="$DCTK_RT_WORK/sniff_$who.pcap" \
            --hosts="$SERVICE_IPS$CM_GROUP_IP" \
            --exclude-mac="$attacker_mac" |
          sed -n 's/^result //p')
    n=$(field service_packets "$got")
    local where="its own interface (eth0)"
    [[ $who == monitor ]] && where="the bridge $BRIDGE, from the host's network (in its cgroup)"
    record "sniff_$who" "tcpdump for ${sniff_s} s (during the attacks above) by the $who on $where" - \
      "$(field captured "$got") packets captured, ${n:-?} of them FaRM/CM traffic (meanwhile Bastion forwarded $((fwd1 - fwd0)) packets straight into the peers' namespaces)" \
      "$(( ${n:-1} == 0 && fwd1 > fwd0 ))" "$from" "$who"
  done
}
