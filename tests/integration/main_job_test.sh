#!/bin/bash
# main_job_test.sh: the main job (main_job.sh) as CI runs it, with the shortest
# workload that fits its phases (--seconds=0: attacks, CM leader kill, FaRM
# primary kill, a few seconds each), on the default runtime (podman where it
# is installed, else namespace containers). Passes only if the report's every
# check holds and nothing of the run is left behind (namespaces, bridge, the
# monitor's cgroup, podman containers and network, processes, work dir). Needs
# root; skips otherwise. The report, plot and logs land in the test's undeclared
# outputs (bazel-testlogs/.../test.outputs).
set -uo pipefail
if [[ $(id -u) != 0 ]]; then echo "SKIPPED: needs root (namespaces, eBPF)"; exit 0; fi
BIN=$(readlink -f tests/integration/cm_replica)
BIN=${BIN%/tests/integration/cm_replica}
OUT=${TEST_UNDECLARED_OUTPUTS_DIR:-$(mktemp -d)}
export PATH=$PATH:/usr/sbin:/sbin
CGROUP2=$(findmnt -n -o TARGET -t cgroup2 | head -1)
snapshot() {
  ip netns list | awk '{print "netns " $1}'
  ip -o link show type bridge | awk -F': ' '{print "bridge " $2}'
  ls -d "$CGROUP2"/dctk-* 2>/dev/null | sed 's/^/cgroup /'   # host-mode namespace containers
}
before=$(snapshot | sort)
tests/integration/main_job.sh --bin="$BIN" --seconds=0 --out="$OUT" 2>&1 | tee "$OUT/main_job.out"
rc=${PIPESTATUS[0]}
# Nothing of this run may remain: namespaces, bridge, cgroups, processes, work dir.
left=$(comm -13 <(echo "$before") <(snapshot | sort))
work=$(sed -n 's|^\[runtime\] cluster file: \(.*\)/cluster.conf$|\1|p' "$OUT/main_job.out")
[[ -n $work ]] || { echo "main_job_test: the run made no work dir"; exit 1; }
[[ -e $work ]] && left+=" work dir $work"
tag=$(sed -n 's/^\[runtime\] podman: creating network dctk-\(.*\)$/\1/p' "$OUT/main_job.out")
if [[ -n $tag ]]; then
  ct=$(podman ps -aq --filter "label=dctk=$tag")
  [[ -z $ct ]] || left+=" podman containers $ct"
  podman network exists "dctk-$tag" && left+=" podman network dctk-$tag"
fi
procs=$(ps -eo pid,args | grep -F "$work/" | grep -v grep || true)
[[ -z $left ]] || { echo "main_job_test: left behind: $left"; rc=1; }
[[ -z $procs ]] || { echo "main_job_test: processes left behind:"; echo "$procs"; rc=1; }
((rc == 0)) && echo "main_job_test: passed"
exit $rc
