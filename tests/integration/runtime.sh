# runtime.sh: the container runtime layer of the integration demo (sourced, bash).
#
# Makes the nine containers of docs/INTEGRATION.md (cm0-2, farm0-2, client,
# attacker, monitor), runs processes in them, tells their IPs, writes the
# common/config cluster file from those IPs, and removes everything it made
# (containers, network, namespaces, bridge, processes, work dir) on exit, on
# failure and on Ctrl-C.
#
# Runtimes:
#   podman  `podman --runtime runc`, an image imported offline from
#           busybox-static (localhost/dctk-base), /usr /lib /lib64 and the Bazel
#           bin dir bind-mounted read-only (/dctk), the work dir at /work; one
#           podman network per run; the monitor runs with --network host.
#   netns   dctk namespace containers (bastion/manager/netns_containers.h, via
#           netns_ct): a named netns per container on a bridge, label files in
#           $DCTK_RT_WORK/containers for bastiond --netns_dir; the monitor is a
#           host-mode container (netns_ct --host_network): the host's network
#           namespace, its own cgroup, which its processes join.
# Either way the monitor is a host-network container that bastiond enforces by
# its cgroup (dctk_rt_cgroup monitor).
# `auto` picks podman if it is installed, else netns.
#
# Usage:
#   source tests/integration/runtime.sh
#   dctk_rt_init auto "$BIN_DIR"          # BIN_DIR: the bazel-bin dir holding tests/integration/...
#   dctk_rt_create_roles                   # the nine containers, labels role=<role>
#   dctk_rt_write_cluster                  # $DCTK_RT_WORK/cluster.conf (as seen inside: $RT_WORK)
#   dctk_rt_spawn cm0 replica "$RT_BIN/tests/integration/cm_replica" --config="$RT_WORK/cluster.conf" --index=0
#   dctk_rt_exec client "$RT_BIN/tests/integration/cm_ctl" --config="$RT_WORK/cluster.conf" get
#   dctk_rt_signal cm0 replica KILL
#   dctk_rt_cgroup monitor                 # a host-network container's cgroup v2 directory
#   (cleanup runs from the EXIT trap dctk_rt_init installs; define dctk_on_cleanup
#    to run your own steps first)
#
# Inside a container, $RT_BIN is the Bazel bin dir and $RT_WORK the work dir
# (logs: $DCTK_RT_WORK/<container>.<proc>.log on the host).

DCTK_RT_ROLES=(cm0 cm1 cm2 farm0 farm1 farm2 client attacker monitor)
declare -A DCTK_RT_ROLE=([cm0]=cm [cm1]=cm [cm2]=cm [farm0]=farm [farm1]=farm [farm2]=farm
                         [client]=client [attacker]=attacker [monitor]=monitor)
DCTK_RT_IMAGE=localhost/dctk-base
DCTK_RT_PODMAN=(podman --runtime runc)
declare -A DCTK_RT_IP=()
DCTK_RT_CREATED=()
DCTK_RT_IMAGE_IMPORTED=0

dctk_rt_say() { echo "[runtime] $*" >&2; }
dctk_rt_die() { echo "[runtime] error: $*" >&2; exit 1; }

# dctk_rt_init RUNTIME BIN_DIR: chooses the runtime (auto|podman|netns), makes
# the work dir and the network, installs the cleanup traps.
dctk_rt_init() {
  local want=$1
  DCTK_RT_BIN=$(readlink -f "$2")
  [[ -d $DCTK_RT_BIN/tests/integration ]] || dctk_rt_die "no tests/integration under bin dir '$2'"
  [[ $(id -u) == 0 ]] || dctk_rt_die "needs root (containers, namespaces)"
  # netavark and ip live in sbin, which `bazel test` leaves out of PATH.
  export PATH=$PATH:/usr/sbin:/sbin
  case $want in
    auto) if command -v podman >/dev/null && command -v runc >/dev/null; then DCTK_RT=podman; else DCTK_RT=netns; fi ;;
    podman|netns) DCTK_RT=$want ;;
    *) dctk_rt_die "runtime '$want' is not auto, podman or netns" ;;
  esac
  # A tag unique to this run: names of containers, network, bridge.
  DCTK_RT_TAG=$(printf '%04x' $(( $$ % 65536 )))
  DCTK_RT_WORK=$(mktemp -d /tmp/dctk-rt.XXXXXX)
  chmod 755 "$DCTK_RT_WORK"
  trap dctk_rt_cleanup EXIT
  trap 'echo >&2; dctk_rt_say "interrupted: cleaning up"; exit 130' INT TERM HUP
  if [[ $DCTK_RT == podman ]]; then
    RT_BIN=/dctk
    RT_WORK=/work
    DCTK_RT_NET=dctk-$DCTK_RT_TAG
    dctk_rt_image
    dctk_rt_say "podman: creating network $DCTK_RT_NET"
    "${DCTK_RT_PODMAN[@]}" network create "$DCTK_RT_NET" >/dev/null || dctk_rt_die "podman network create failed"
    DCTK_RT_NET_MADE=1
  else
    RT_BIN=$DCTK_RT_BIN
    RT_WORK=$DCTK_RT_WORK
    DCTK_RT_BRIDGE=dctkbr$DCTK_RT_TAG
    DCTK_RT_PREFIX=10.$(( 100 + $$ % 100 )).$(( ($$ / 100) % 250 ))
    DCTK_RT_NETNS_DIR=$DCTK_RT_WORK/containers
    dctk_rt_say "netns: creating bridge $DCTK_RT_BRIDGE ($DCTK_RT_PREFIX.0/24)"
    dctk_rt_netns_ct bridge-up || dctk_rt_die "bridge $DCTK_RT_BRIDGE not created"
    DCTK_RT_NET_MADE=1
  fi
  export RT_BIN RT_WORK
}

dctk_rt_netns_ct() {
  "$DCTK_RT_BIN/tests/integration/netns_ct" --bridge="$DCTK_RT_BRIDGE" --prefix="$DCTK_RT_PREFIX" \
    --dir="$DCTK_RT_NETNS_DIR" "$@"
}

# Imports the busybox-static image unless it exists.
dctk_rt_image() {
  "${DCTK_RT_PODMAN[@]}" image exists "$DCTK_RT_IMAGE" && return 0
  local busybox
  busybox=$(command -v busybox) || dctk_rt_die "busybox not installed (apt-get install busybox-static)"
  file -L "$busybox" | grep -q 'statically linked' || dctk_rt_die "$busybox is not static (busybox-static)"
  dctk_rt_say "podman: importing $DCTK_RT_IMAGE from a busybox-static rootfs"
  local root=$DCTK_RT_WORK/rootfs a
  mkdir -p "$root"/{bin,usr,lib,lib64,dctk,work,tmp,proc,sys,dev,etc,run}
  cp "$busybox" "$root/bin/busybox"
  for a in sh sleep kill cat ip ls ps echo test true; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -c . | "${DCTK_RT_PODMAN[@]}" import -q - "$DCTK_RT_IMAGE" >/dev/null ||
    dctk_rt_die "podman import failed"
  rm -rf "$root"
  DCTK_RT_IMAGE_IMPORTED=1
}

# dctk_rt_create NAME ROLE INDEX: one container labelled role=ROLE (INDEX:
# its host part for netns). The monitor shares the host's network (a
# host-network container: podman --network host, netns_ct --host_network).
dctk_rt_create() {
  local name=$1 role=$2 index=$3
  if [[ $DCTK_RT == podman ]]; then
    local net=(--network "$DCTK_RT_NET")
    [[ $role == monitor ]] && net=(--network host)
    "${DCTK_RT_PODMAN[@]}" run -d --name "dctk-$DCTK_RT_TAG-$name" --label "role=$role" \
      --label "dctk=$DCTK_RT_TAG" "${net[@]}" \
      --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
      -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro -v "$DCTK_RT_BIN:/dctk:ro" \
      -v "$DCTK_RT_WORK:/work" "$DCTK_RT_IMAGE" \
      /bin/sh -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done' >/dev/null ||
      dctk_rt_die "podman run $name failed"
    DCTK_RT_CREATED+=("$name")
    if [[ $role == monitor ]]; then
      DCTK_RT_IP[$name]=host
    else
      DCTK_RT_IP[$name]=$("${DCTK_RT_PODMAN[@]}" inspect -f \
        '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "dctk-$DCTK_RT_TAG-$name")
    fi
  else
    if [[ $role == monitor ]]; then
      dctk_rt_netns_ct --host_network create "$DCTK_RT_TAG$name" "role=$role" "dctk=$DCTK_RT_TAG" ||
        dctk_rt_die "host-network container $name not created"
      DCTK_RT_CREATED+=("$name")
      DCTK_RT_IP[$name]=host
      dctk_rt_say "container $name (role $role): host network namespace, cgroup $(dctk_rt_cgroup "$name")"
      return 0
    fi
    dctk_rt_netns_ct create "$DCTK_RT_TAG$name" "$index" "role=$role" "dctk=$DCTK_RT_TAG" ||
      dctk_rt_die "namespace container $name not created"
    DCTK_RT_CREATED+=("$name")
    DCTK_RT_IP[$name]=$DCTK_RT_PREFIX.$index
  fi
  [[ -n ${DCTK_RT_IP[$name]} ]] || dctk_rt_die "container $name has no IP"
  dctk_rt_say "container $name (role $role): ${DCTK_RT_IP[$name]}"
}

dctk_rt_create_roles() {
  local i=2 name
  for name in "${DCTK_RT_ROLES[@]}"; do
    dctk_rt_create "$name" "${DCTK_RT_ROLE[$name]}" "$i"
    i=$((i + 1))
  done
}

dctk_rt_ip() { echo "${DCTK_RT_IP[$1]}"; }

# dctk_rt_cgroup NAME: the cgroup v2 directory of host-network container NAME,
# found the way bastiond finds it (podman: the 0:: line of its init process's
# /proc/PID/cgroup under the cgroup2 mount; netns: netns_ct's convention).
dctk_rt_cgroup() {
  local name=$1 pid rel
  [[ ${DCTK_RT_IP[$name]} == host ]] || { dctk_rt_say "$name is not a host-network container"; return 1; }
  if [[ $DCTK_RT == podman ]]; then
    pid=$("${DCTK_RT_PODMAN[@]}" inspect -f '{{.State.Pid}}' "dctk-$DCTK_RT_TAG-$name") || return 1
    rel=$(sed -n 's/^0:://p' "/proc/$pid/cgroup") || return 1
    echo "$(findmnt -n -o TARGET -t cgroup2 | head -1)$rel"
  else
    dctk_rt_netns_ct cgroup "$DCTK_RT_TAG$name"
  fi
}

# The cluster file (common/config text proto) from the containers' IPs: CM
# replicas on UDP 7000 (group "cm"), FaRM machines' net fabric on TCP 7100.
dctk_rt_write_cluster() {
  local f=$DCTK_RT_WORK/cluster.conf i
  {
    for i in 0 1 2; do echo "nodes { name: \"cm$i\" address: \"$(dctk_rt_ip cm$i):7000\" }"; done
    for i in 0 1 2; do echo "nodes { name: \"farm$i\" address: \"$(dctk_rt_ip farm$i):7100\" }"; done
    echo 'groups { name: "cm" f: 1 members: ["cm0", "cm1", "cm2"] }'
    echo 'timeouts { request_ms: 20 heartbeat_ms: 5 view_change_ms: 300 lease_ms: 1000 }'
  } > "$f"
  dctk_rt_say "cluster file: $f"
}

# dctk_rt_exec NAME CMD...: runs CMD in the container, in the foreground.
dctk_rt_exec() {
  local name=$1; shift
  if [[ $DCTK_RT == podman ]]; then
    "${DCTK_RT_PODMAN[@]}" exec "dctk-$DCTK_RT_TAG-$name" "$@"
  elif [[ ${DCTK_RT_IP[$name]} == host ]]; then
    # A process of the container: joins its cgroup, then runs CMD.
    /bin/sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$(dctk_rt_cgroup "$name")" "$@"
  else
    ip netns exec "dctk-$DCTK_RT_TAG$name" "$@"
  fi
}

# dctk_rt_spawn NAME PROC CMD...: starts CMD in the container in the
# background; output in $DCTK_RT_WORK/NAME.PROC.log, pid in NAME.PROC.pid.
dctk_rt_spawn() {
  local name=$1 proc=$2; shift 2
  local base=$RT_WORK/$name.$proc
  rm -f "$DCTK_RT_WORK/$name.$proc.pid"
  local script='echo $$ > "$0.pid"; exec "$@" >> "$0.log" 2>&1'
  if [[ $DCTK_RT == podman ]]; then
    "${DCTK_RT_PODMAN[@]}" exec -d "dctk-$DCTK_RT_TAG-$name" /bin/sh -c "$script" "$base" "$@" >/dev/null
  else
    dctk_rt_exec "$name" setsid /bin/sh -c "$script" "$base" "$@" </dev/null >/dev/null 2>&1 &
    disown
  fi
  local i
  for i in $(seq 100); do [[ -s $DCTK_RT_WORK/$name.$proc.pid ]] && return 0; sleep 0.05; done
  dctk_rt_die "process $proc in $name did not start"
}

# dctk_rt_signal NAME PROC SIG: sends SIG (e.g. KILL, TERM) to the process.
dctk_rt_signal() {
  local name=$1 proc=$2 sig=$3 pid
  pid=$(cat "$DCTK_RT_WORK/$name.$proc.pid" 2>/dev/null) || return 1
  if [[ $DCTK_RT == podman ]]; then
    "${DCTK_RT_PODMAN[@]}" exec "dctk-$DCTK_RT_TAG-$name" kill "-$sig" "$pid" 2>/dev/null
  else
    kill "-$sig" "$pid" 2>/dev/null
  fi
}

# dctk_rt_alive NAME PROC: whether the process still runs.
dctk_rt_alive() { dctk_rt_signal "$1" "$2" 0; }

# dctk_rt_stop NAME PROC: SIGTERM, then waits (up to 5 s; then SIGKILL).
dctk_rt_stop() {
  local i
  dctk_rt_signal "$1" "$2" TERM || return 0
  for i in $(seq 100); do dctk_rt_alive "$1" "$2" || return 0; sleep 0.05; done
  dctk_rt_say "$2 in $1 ignored SIGTERM: killing it"
  dctk_rt_signal "$1" "$2" KILL
}

# Removes everything this run made. Idempotent; runs from the EXIT trap.
dctk_rt_cleanup() {
  local rc=$? name pid f
  trap - EXIT INT TERM HUP
  declare -F dctk_on_cleanup >/dev/null && dctk_on_cleanup
  if [[ $DCTK_RT == podman ]]; then
    for name in "${DCTK_RT_CREATED[@]}"; do
      "${DCTK_RT_PODMAN[@]}" rm -f -t 0 "dctk-$DCTK_RT_TAG-$name" >/dev/null 2>&1 ||
        dctk_rt_say "could not remove container $name"
    done
    if [[ -n ${DCTK_RT_NET_MADE:-} ]]; then
      "${DCTK_RT_PODMAN[@]}" network rm -f "$DCTK_RT_NET" >/dev/null 2>&1 ||
        dctk_rt_say "could not remove network $DCTK_RT_NET"
    fi
    if (( DCTK_RT_IMAGE_IMPORTED )) && [[ -z ${DCTK_RT_KEEP_IMAGE:-} ]]; then
      "${DCTK_RT_PODMAN[@]}" rmi "$DCTK_RT_IMAGE" >/dev/null 2>&1 || true
    fi
  elif [[ $DCTK_RT == netns ]]; then
    # Processes run in the host's namespace too (the monitor; deleting it kills
    # what is left in its cgroup): kill by pid file.
    for f in "$DCTK_RT_WORK"/*.pid; do
      [[ -e $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    for name in "${DCTK_RT_CREATED[@]}"; do
      for pid in $(ip netns pids "dctk-$DCTK_RT_TAG$name" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      dctk_rt_netns_ct delete "$DCTK_RT_TAG$name" || dctk_rt_say "could not remove container $name"
    done
    if [[ -n ${DCTK_RT_NET_MADE:-} ]]; then
      dctk_rt_netns_ct bridge-down || dctk_rt_say "could not remove bridge $DCTK_RT_BRIDGE"
    fi
  fi
  if [[ -n ${DCTK_RT_WORK:-} && -d $DCTK_RT_WORK ]]; then
    if [[ -n ${DCTK_RT_KEEP_WORK:-} ]]; then
      dctk_rt_say "logs kept in $DCTK_RT_WORK"
    else
      rm -rf "$DCTK_RT_WORK"
    fi
  fi
  DCTK_RT_CREATED=()
  DCTK_RT_NET_MADE=
  return $rc
}
