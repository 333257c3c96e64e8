#!/bin/bash
# Sourced by the farm/workload end-to-end tests: waiting for a client
# program's progress lines ("progress t=... tx_per_s=... config=..."). The
# test defines fail() and sets
#   PROGRESS_FIELDS     the keys that must all be > 0 for a line to count
#                       (e.g. "tx_per_s lookups_per_s")
#   PROGRESS_TIMEOUT_S  how long wait_progress waits

busy_lines() {  # LOG [MIN_CONFIG]: progress lines with every PROGRESS_FIELDS > 0 (in a configuration > MIN_CONFIG)
  [[ -e $1 ]] || { echo 0; return 0; }  # the program's shell has not opened its log yet
  awk -v min="${2:-0}" -v fields="$PROGRESS_FIELDS" 'BEGIN { nwant = split(fields, want, " ") }
       /^progress / { split("", v)
         for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         busy = v["config"] + 0 > min + 0
         for (j = 1; j <= nwant; j++) if (!(v[want[j]] + 0 > 0)) busy = 0
         if (busy) n++ }
       END { print n + 0 }' "$1"
}

wait_progress() {  # LOG N [MIN_CONFIG]: waits (up to PROGRESS_TIMEOUT_S) for N more such lines
  local want=$(( $(busy_lines "$1" "${3:-0}") + $2 ))
  for _ in $(seq $(( PROGRESS_TIMEOUT_S * 10 ))); do
    (( $(busy_lines "$1" "${3:-0}") >= want )) && return 0
    sleep 0.1
  done
  fail "$1: not $2 more progress lines with $PROGRESS_FIELDS > 0 (configuration > ${3:-0}) within $PROGRESS_TIMEOUT_S s"
}
