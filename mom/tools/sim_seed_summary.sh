#!/usr/bin/env bash
# Merges mom_sim CSVs of the same sweep run as several processes (e.g. one per
# seed, `mom_sim --first_seed=S --seeds=1`) into one CSV, a summary with the
# mean, min and max reorder rate (percent) per (load, design) over the seeds
# present, and, with gnuplot, a PNG of the mean with min-max bars per design.
# With --x=senders the x axis is the number of MOM senders instead of the load
# (a senders sweep: one mom_sim run per --senders, at one load).
#   mom/tools/sim_seed_summary.sh [--x=senders] OUT_PREFIX a.csv b.csv ...
#   -> OUT_PREFIX.csv, OUT_PREFIX_summary.csv, OUT_PREFIX.png
set -euo pipefail
xcol=3 xname=load xlabel='background load'
if [[ ${1:-} == --x=senders ]]; then
  xcol=5 xname=senders xlabel='MOM senders (log scale)'
  shift
fi
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [--x=senders] OUT_PREFIX CSV..." >&2
  exit 2
fi
out=$1
shift
head -1 "$1" > "$out.csv"
for f in "$@"; do tail -n +2 "$f"; done | sort -t, -k${xcol},${xcol}n -k2,2 -k4,4n >> "$out.csv"
# Columns: k,design,load,seed,senders,...,reorder_rate (9th), ...
awk -F, -v x="$xcol" -v name="$xname" 'NR == 1 {print name ",design,seeds,mean_pct,min_pct,max_pct"}
  NR > 1 {
    key = $x "," $2; r = 100 * $9
    n[key]++; sum[key] += r
    if (!(key in lo) || r < lo[key]) lo[key] = r
    if (!(key in hi) || r > hi[key]) hi[key] = r
  }
  END {
    for (k in n) printf "%s,%d,%.2f,%.2f,%.2f\n", k, n[k], sum[k] / n[k], lo[k], hi[k]
  }' "$out.csv" | (read -r header; echo "$header"; sort -t, -k1,1n -k2,2) > "$out""_summary.csv"
if ! command -v gnuplot > /dev/null; then
  echo "gnuplot not installed: no plot" >&2
  exit 0
fi
k=$(awk -F, 'NR == 2 {print $1}' "$out.csv")
title="MOM reorder rate, fat tree k=$k"
logscale=""
if [[ $xname == senders ]]; then
  title+=", load $(awk -F, 'NR == 2 {printf "%g", $3}' "$out.csv")"
  logscale="set logscale x 2"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plot=""
i=0
for d in $(awk -F, 'NR > 1 {print $2}' "$out""_summary.csv" | sort -u); do
  # Designs side by side: +-1.5 % of x (senders) or +-0.015 (load).
  awk -F, -v d="$d" -v i="$i" -v x="$xname" 'NR > 1 && $2 == d {
      o = (i - 1.5) * 0.01
      print (x == "senders" ? $1 * (1 + 3 * o) : $1 + o) "," $4 "," $5 "," $6
    }' "$out""_summary.csv" > "$tmp/$d"
  [[ -n "$plot" ]] && plot+=", "
  plot+="'$tmp/$d' using 1:2:3:4 with yerrorlines lw 2 title '$d'"
  i=$((i + 1))
done
gnuplot <<EOF
set terminal pngcairo size 800,500
set output '$out.png'
set datafile separator ','
set key top left
$logscale
set xlabel '$xlabel'
set ylabel 'reorder rate (%), mean and min-max over seeds'
set title '$title'
plot $plot
EOF
echo "wrote $out.csv, ${out}_summary.csv, $out.png"
