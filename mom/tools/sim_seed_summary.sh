#!/usr/bin/env bash
# Merges mom_sim CSVs of the same sweep run as several processes (e.g. one per
# seed, `mom_sim --first_seed=S --seeds=1`) into one CSV, a summary with the
# mean, min and max reorder rate (percent) per (load, design) over the seeds
# present, and, with gnuplot, a PNG of the mean with min-max bars per design.
#   mom/tools/sim_seed_summary.sh OUT_PREFIX a.csv b.csv ...
#   -> OUT_PREFIX.csv, OUT_PREFIX_summary.csv, OUT_PREFIX.png
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 OUT_PREFIX CSV..." >&2
  exit 2
fi
out=$1
shift
head -1 "$1" > "$out.csv"
for f in "$@"; do tail -n +2 "$f"; done | sort -t, -k3,3n -k2,2 -k4,4n >> "$out.csv"
# Columns: k,design,load,seed,...,reorder_rate (9th), ...
awk -F, 'NR > 1 {
    key = $3 "," $2; r = 100 * $9
    n[key]++; sum[key] += r
    if (!(key in lo) || r < lo[key]) lo[key] = r
    if (!(key in hi) || r > hi[key]) hi[key] = r
  }
  END {
    print "load,design,seeds,mean_pct,min_pct,max_pct"
    for (k in n) printf "%s,%d,%.2f,%.2f,%.2f\n", k, n[k], sum[k] / n[k], lo[k], hi[k]
  }' "$out.csv" | (read -r header; echo "$header"; sort -t, -k1,1n -k2,2) > "$out""_summary.csv"
if ! command -v gnuplot > /dev/null; then
  echo "gnuplot not installed: no plot" >&2
  exit 0
fi
k=$(awk -F, 'NR == 2 {print $1}' "$out.csv")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plot=""
offset=-0.015
for d in $(awk -F, 'NR > 1 {print $2}' "$out""_summary.csv" | sort -u); do
  awk -F, -v d="$d" -v o="$offset" 'NR > 1 && $2 == d {print $1 + o "," $4 "," $5 "," $6}' \
    "$out""_summary.csv" > "$tmp/$d"
  [[ -n "$plot" ]] && plot+=", "
  plot+="'$tmp/$d' using 1:2:3:4 with yerrorlines lw 2 title '$d'"
  offset=$(awk -v o="$offset" 'BEGIN {print o + 0.01}')
done
gnuplot <<EOF
set terminal pngcairo size 800,500
set output '$out.png'
set datafile separator ','
set key top left
set xlabel 'background load'
set ylabel 'reorder rate (%), mean and min-max over seeds'
set title 'MOM reorder rate, fat tree k=$k'
plot $plot
EOF
echo "wrote $out.csv, ${out}_summary.csv, $out.png"
