#!/usr/bin/python3
"""main_job_report.py: the report of the main job (step 11 of main_job.sh).

Reads what the run left in its work dir and prints the final table, writes it to
OUT/report.txt, plots throughput over time with the fault times marked
(OUT/throughput.png, gnuplot) and exits 0 only if every check holds.

  main_job_report.py report --work=DIR --out=DIR --attacker=NAME --monitor=NAME

Inputs (work dir): timeline.tsv (epoch, event, detail: main_job.sh's marks),
client.workload.log (a progress line per second, a summary, the invariant),
cm0.driver.log (cm_driver: glog lines of the CM service, its stats lines),
cm*.replica.log (a replica's statistics at exit), events.jsonl (bastionctl
monitor --json), attacks.tsv (main_job_attacks.sh), counters.txt.
"""
import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys

# Verdicts that are no part of the service: IPv6 (the host's neighbour
# discovery; Bastion does not enforce IPv6 yet, it drops it).
NOT_SERVICE = {"unsupported_l3"}


def read_events(path, first=0, last=None):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if n <= first or (last is not None and n > last):
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def parse_timeline(path):
    t = {}
    with open(path) as f:
        for line in f:
            epoch, key, detail = (line.rstrip("\n").split("\t") + ["", ""])[:3]
            t.setdefault(key, (float(epoch), detail))
    return t


# farm_workload's lines (farm/workload/cluster_workload.h): key=value fields.
#   progress t=3.0 tx_per_s=812 p50_us=1900 p99_us=9000 lookups_per_s=... aborts=.. errors=.. config=..
#   summary seconds=24.0 committed=19000 tx_per_s=790 p50_us=... p99_us=... lookups=... ...
#   invariant ok | invariant FAILED <reason>
def fields(line, kind):
    if not line.startswith(kind + " "):
        return None
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


# glog's prefix: "W20261126 05:05:01.473105 ..." (older glog: no year).
GLOG = re.compile(r"^[IWEF](\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)")


def glog_epoch(line):
    m = GLOG.match(line)
    if not m:
        return None
    year, mo, d, hh, mm, ss, frac = m.groups()
    year = int(year) if year else datetime.datetime.now().year
    local = datetime.datetime(year, int(mo), int(d), int(hh), int(mm), int(ss), int(frac[:6].ljust(6, "0")))
    return local.timestamp()


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def cmd_report(a):
    w = a.work
    tl = parse_timeline(os.path.join(w, "timeline.tsv"))
    checks = []  # (what, ok, detail)

    def check(what, ok, detail=""):
        checks.append((what, bool(ok), detail))

    t0 = tl.get("workload_start", (0, ""))[0]
    rel = lambda key: tl[key][0] - t0 if key in tl else None

    # Workload.
    wl = read(os.path.join(w, "client.workload.log"))
    progress = []  # (t, tx/s, p50 ms, p99 ms, lookups/s)
    for line in wl:
        f = fields(line, "progress")
        if f:
            progress.append((float(f["t"]), float(f["tx_per_s"]), int(f["p50_us"]) / 1000.0,
                             int(f["p99_us"]) / 1000.0, float(f.get("lookups_per_s", 0))))
    total = next((fields(l, "summary") for l in wl if l.startswith("summary ")), None)
    invariant = next((l for l in wl if l.startswith("invariant ")), "invariant missing")
    inv_ok = invariant.strip() == "invariant ok"
    check("the workload reported progress every second", len(progress) >= 3, f"{len(progress)} progress lines")
    check("bank invariant holds, no committed transfer lost (total, ledger, journals)", inv_ok, invariant)
    check("no transfer with an unknown outcome", total is not None and total.get("unknown") == "0",
          f"unknown={total.get('unknown') if total else '?'}")
    for key, what in (("cm_kill", "CM leader kill"), ("farm_kill", "FaRM primary kill")):
        at = rel(key)
        after = [p for p in progress if at is not None and p[0] > at + 1.0 and p[1] > 0]
        check(f"the workload continued after the {what}", after,
              f"{len(after)} later seconds with commits" if at is not None else "fault not run")

    # Faults.
    cm_view = (tl["cm_view_change"][0] - tl["cm_kill"][0]) * 1000 if "cm_view_change" in tl else None
    cm_commit = (tl["cm_next_commit"][0] - tl["cm_kill"][0]) * 1000 if "cm_next_commit" in tl else None
    check("CM view change after the leader kill, next CM command committed", cm_commit is not None,
          f"{tl.get('cm_kill', (0, '?'))[1]} killed; new leader {tl.get('cm_view_change', (0, '?'))[1]}")
    driver = read(os.path.join(w, "cm0.driver.log"))
    recovered = [l for l in driver if "CM: recovered from" in l]
    farm_rec_ms = resolved = None
    if "farm_kill" in tl:
        # The first recovery the CM finished after the kill.
        after = [(glog_epoch(l), l) for l in recovered]
        after = [(e, l) for e, l in after if e is not None and e > tl["farm_kill"][0]]
        if after:
            farm_rec_ms = (after[0][0] - tl["farm_kill"][0]) * 1000
            m = re.search(r"resolved in ([0-9.]+)(ms|us|s)\b", after[0][1])
            if m:
                resolved = float(m.group(1)) * {"ms": 1, "us": 0.001, "s": 1000}[m.group(2)]
    check("FaRM recovery after the primary kill (lease expiry, promotion, in-flight resolved)",
          farm_rec_ms is not None, f"{tl.get('farm_kill', (0, '?'))[1]} killed")
    # Throughput around the FaRM kill, from the 1-second progress lines.
    around = None
    if "farm_kill" in tl and progress:
        at = rel("farm_kill")
        before = [p[1] for p in progress if at - 5 <= p[0] <= at]
        after = [p[1] for p in progress if p[0] > at][:3]
        if before and after:
            around = (sum(before) / len(before), after)

    # Speculative Paxos: executions kept vs rolled back, from the replicas' exit lines.
    requests = rolled = view_changes = 0
    for i in range(3):
        for l in read(os.path.join(w, f"cm{i}.replica.log")):
            m = re.search(r"requests (\d+) commits (\d+) view_changes (\d+) transfers (\d+) rolled_back (\d+)", l)
            if m:
                requests += int(m.group(1))
                rolled += int(m.group(5))
                view_changes += int(m.group(3))
    spec = (1 - rolled / requests) * 100 if requests else None
    driver_stats = [l for l in driver if l.startswith("cm_driver t=")]
    cm_cmds = re.search(r"commands=(\d+) errors=(\d+)", driver_stats[-1]) if driver_stats else None
    fast = re.search(r"fast_path=(\d+) slow_path=(\d+)", driver_stats[-1]) if driver_stats else None
    fast_rate = None
    if fast and int(fast.group(1)) + int(fast.group(2)):
        fast_rate = int(fast.group(1)) / (int(fast.group(1)) + int(fast.group(2))) * 100

    # Bastion: attacks and allowed flows.
    attacks = [l.rstrip("\n").split("\t") for l in open(os.path.join(w, "attacks.tsv"))] \
        if os.path.exists(os.path.join(w, "attacks.tsv")) else []
    blocked = 0
    for name, what, expect, got, defeated, verdicts in ((r + [""] * 6)[:6] for r in attacks):
        ok = defeated == "1" and (expect == "-" or re.search(rf"DROP ({expect}) ", verdicts + " "))
        blocked += bool(ok)
        check(f"attack blocked: {name}", ok, f"{got}; {verdicts or 'no drop event'}")
    events = read_events(os.path.join(w, "events.jsonl"))
    # Drops on the attacker's or the monitor's side, or of what they sent
    # (events name the peer in src), are the attacks', not the service's.
    intruders = {a.attacker, a.monitor}
    own = [e for e in events if e.get("action") == "drop" and e["verdict"] not in NOT_SERVICE
           and e.get("container") not in intruders and e.get("src") not in intruders]
    # TCP/UDP of the service dropped = a dependency the policy misses. ICMP
    # errors are listed apart: a port-unreachable for a reply that arrived
    # after its socket closed is not a flow of the service.
    broken = [e for e in own if e.get("protocol") in ("tcp", "udp")]
    icmp = [e for e in own if e.get("protocol") not in ("tcp", "udp")]
    check("allowed flows broken = 0 (no TCP/UDP of the service dropped)", not broken,
          "; ".join(f"{e['verdict']} {e['src']} -> {e['dst']} {e['protocol']}/{e['dport']}" for e in broken[:5]))
    counters = dict(l.split()[:2] for l in read(os.path.join(w, "counters.txt")) if re.match(r"^[a-z_0-9]+ +\d+$", l))
    lost = int(counters.get("events_lost", "0"))
    check("Bastion lost no verdict event", lost == 0, f"events_lost {lost}")
    # CM requests go through the MOM group: Bastion stamps and copies each one
    # to the replicas' veths (group_forwarded); none may be refused as not MOM
    # or fail to copy.
    group_copies = int(counters.get("group_forwarded", "0"))
    group_bad = int(counters.get("group_not_mom", "0")) + int(counters.get("group_copy_failed", "0"))
    check("CM requests crossed Bastion as MOM group datagrams (stamped, copied to the replicas)",
          group_copies > 0 and group_bad == 0,
          f"group_forwarded {group_copies}, group_not_mom + group_copy_failed {group_bad}")

    # The table.
    fmt = lambda v, unit="", nd=0: "-" if v is None else f"{v:,.{nd}f}{unit}"
    rows = [
        ("containers enforced by bastiond (monitor by its cgroup)", tl.get("enforced", (0, "0"))[1]),
        ("throughput (committed transfers/s)",
         f"{fmt(float(total['tx_per_s']))} ({int(total['committed']):,} in {float(total['seconds']):.1f} s, "
         f"{total.get('aborts', '?')} aborts, {total.get('errors', '?')} retried errors)" if total else "-"),
        ("transfer latency p50 / p99",
         f"{fmt(int(total['p50_us']) / 1000, ' ms', 2)} / {fmt(int(total['p99_us']) / 1000, ' ms', 2)}" if total else "-"),
        ("hashtable lookups (one-sided reads; misses, wrong values)",
         f"{int(total.get('lookups', 0)):,} ({total.get('lookup_misses', '?')}, {total.get('lookup_mismatches', '?')})" if total else "-"),
        ("bank invariant (total, ledger, journals)", "holds" if inv_ok else invariant),
        ("CM requests through the MOM group (stamped by Bastion)", f"{group_copies:,}"),
        ("CM commands on the replicas (cm_driver)",
         f"{cm_cmds.group(1)} ({cm_cmds.group(2)} without reply)" if cm_cmds else "-"),
        ("speculative success (CM commands on the fast path)",
         f"{fmt(fast_rate, ' %', 2)} ({fast.group(1)} of {int(fast.group(1)) + int(fast.group(2))}; "
         "the rest completed on a fallback)" if fast_rate is not None else "-"),
        ("speculative executions kept (not rolled back)",
         f"{fmt(spec, ' %', 2)} ({requests - rolled} of {requests}; {view_changes} view changes)" if spec is not None else "-"),
        ("CM leader kill: new leader elected", fmt(cm_view, " ms")),
        ("CM leader kill: next CM command committed", fmt(cm_commit, " ms")),
        ("FaRM primary kill: recovered (incl. lease expiry)", fmt(farm_rec_ms, " ms")),
        ("FaRM primary kill: in-flight resolution", fmt(resolved, " ms", 2)),
        ("FaRM primary kill: transfers/s 5 s before | 3 s after",
         f"{around[0]:.0f} | {', '.join(f'{x:.0f}' for x in around[1])}" if around else "-"),
        ("attacks tried / blocked", f"{len(attacks)} / {blocked}"),
        ("allowed flows broken (service TCP/UDP dropped)", str(len(broken))),
        ("other drops of service containers (ICMP errors)", str(len(icmp))),
    ]
    lines = ["", "Main job report", "=" * 78]
    lines += [f"  {k:<56} {v}" for k, v in rows]
    lines += ["", "Attacks (Bastion's verdicts from its event stream)", "-" * 78]
    for name, what, expect, got, defeated, verdicts in ((r + [""] * 6)[:6] for r in attacks):
        lines.append(f"  {name:<20} {'blocked' if defeated == '1' else 'NOT BLOCKED':<12} {verdicts or '(passive: nothing sent)'}")
    lines += ["", "Checks", "-" * 78]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {what}" + (f"  ({detail})" if detail and not ok else "") for what, ok, detail in checks]
    passed = all(ok for _, ok, _ in checks)
    lines += ["", f"RESULT: {'every check holds' if passed else 'FAILED: ' + str(sum(not ok for _, ok, _ in checks)) + ' check(s)'}"]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "report.txt"), "w") as f:
        f.write(text)
    plot(a.out, progress, {k: rel(k) for k in ("cm_kill", "farm_kill", "attacks_start", "attacks_end")}, tl)
    return 0 if passed else 1


def plot(out, progress, at, tl):
    data = os.path.join(out, "throughput.dat")
    with open(data, "w") as f:
        f.write("# t_s transfers_per_s p50_ms p99_ms lookups_per_s\n")
        for p in progress:
            f.write(f"{p[0]:.2f} {p[1]:.0f} {p[2]:.3f} {p[3]:.3f} {p[4]:.0f}\n")
    marks = []
    for key, label, y in (("cm_kill", f"CM leader {tl.get('cm_kill', (0, ''))[1]} killed", 0.95),
                          ("farm_kill", f"FaRM primary {tl.get('farm_kill', (0, ''))[1]} killed", 0.88)):
        if at.get(key) is not None:
            marks.append(f'set arrow from {at[key]:.2f}, graph 0 to {at[key]:.2f}, graph 1 nohead lc rgb "red" dt 2 lw 2')
            marks.append(f'set label "{label}" at {at[key]:.2f}, graph {y} right offset -0.5,0 tc rgb "red"')
    if at.get("attacks_start") is not None and at.get("attacks_end") is not None:
        marks.append(f'set object rect from {at["attacks_start"]:.2f}, graph 0 to {at["attacks_end"]:.2f}, graph 1 '
                     'fc rgb "#ffe8c0" fs solid 0.5 noborder behind')
        marks.append(f'set label "attacks" at {at["attacks_start"]:.2f}, graph 0.05 left offset 0.5,0')
    script = "\n".join([
        'set terminal pngcairo size 1000,450 font ",10"',
        f'set output "{os.path.join(out, "throughput.png")}"',
        'set title "dctk main job: the client throughput, faults marked"',
        'set xlabel "seconds since the workload started"',
        'set ylabel "transfers/s"',
        'set yrange [0:*]',
        'set grid',
        'set key top left opaque',
        *marks,
        'set y2label "lookups/s"',
        'set y2range [0:*]',
        'set ytics nomirror',
        'set y2tics',
        f'plot "{data}" using 1:2 with linespoints lw 2 pt 7 title "committed transfers/s", '
        f'"{data}" using 1:5 axes x1y2 with lines lw 1 lc rgb "gray" title "hashtable lookups/s (right axis)"',
    ])
    if progress:
        subprocess.run(["gnuplot"], input=script, text=True, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--attacker", required=True, help="the attacker's name in bastiond's events")
    r.add_argument("--monitor", required=True, help="the monitor's name in bastiond's events")
    r.set_defaults(run=cmd_report)
    a = p.parse_args()
    return a.run(a)


if __name__ == "__main__":
    sys.exit(main())
