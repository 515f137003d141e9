"""bench/compare's two python halves: running one fio job with CPU accounting, and the report.

  compare_report.py run --out PREFIX --ramp S [--servers PID,PID...] -- fio ARGS...
      Runs fio with --output=PREFIX.json and writes PREFIX.cpu.json: the CPU time (utime + stime)
      of the target's server processes (from /proc/PID/stat) and of fio's whole process tree
      (every thread, so librbd's too: /proc at the window start, wait4's rusage at the end), over
      a window that starts when fio's ramp ends and ends when fio exits, and the servers' peak
      RSS (VmHWM). fio's own usr_cpu/sys_cpu count only its job thread, hence the rusage.

  compare_report.py report --results DIR --out DIR [--skipped NAME=WHY ...] [config flags]
      Reads DIR/WORKLOAD.TARGET.ROUND{.json,.cpu.json}, keeps per workload and target the round
      with the median IOPS, writes OUT/compare.md (Markdown table with ratios against weft; weft
      RF1/RF2/RF3 beside Ceph size 1/3 and issue 7's replication targets when those targets
      ran), OUT/compare.json (every figure of every round) and, when gnuplot exists,
      OUT/compare.png.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

TARGETS = ["weft", "weft-rf1", "weft-rf2", "weft-rf3", "ceph-1osd", "ceph-3osd", "qemu-nbd",
           "device", "device-sync"]
# The replicated targets side by side: weft's cluster at RF1/2/3 and Ceph at pool size 1/3.
REPLICATION_TARGETS = {"weft-rf1": "weft RF1", "weft-rf2": "weft RF2", "weft-rf3": "weft RF3",
                       "ceph-1osd": "Ceph size 1", "ceph-3osd": "Ceph size 3"}
REPLICATION_FIGURES = [("IOPS", "iops", 0), ("mean µs", "latency_mean_us", 1),
                       ("p99 µs", "latency_p99_us", 1), ("CPU µs/IO", "cpu_per_io_us", 1)]
# Issue 7's targets (read, not asserted): name, workload, figure, numerator and denominator
# target, and the bound the ratio must meet ("max" or "min"). Latency is fio's mean.
REPLICATION_GOALS = [
    ("RF2 QD1 4 KiB write latency / RF1", "randwrite-4k-qd1", "latency_mean_us", "weft-rf2",
     "weft-rf1", "max", 2.0),
    ("weft RF3 QD1 4 KiB write latency / Ceph size 3", "randwrite-4k-qd1", "latency_mean_us",
     "weft-rf3", "ceph-3osd", "max", 0.5),
    ("QD32 4 KiB write IOPS weft RF3 / Ceph size 3", "randwrite-4k-qd32", "iops", "weft-rf3",
     "ceph-3osd", "min", 2.0),
    ("QD32 4 KiB write IOPS weft RF1 / Ceph size 1", "randwrite-4k-qd32", "iops", "weft-rf1",
     "ceph-1osd", "min", 2.0),
]
WORKLOADS = ["randwrite-4k-qd1", "randread-4k-qd1", "randwrite-4k-qd32", "randread-4k-qd32",
             "write-1m-qd8", "randrw70-4k-qd32"]
# The goals for weft single node against Ceph (read, not asserted): latency and IOPS at
# least 5x better, CPU per I/O at most a fifth.
GOAL_FACTOR = 5.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


# --- run ------------------------------------------------------------------------------------

def process_cpu_s(pid):
    """utime + stime of every thread of PID, in seconds; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            # Field 2 (comm) may hold spaces; the fields after its closing paren are fixed.
            fields = file.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def process_tree(pid):
    """PID and its descendants (fio forks one process per job)."""
    pids = [pid]
    for current in pids:
        for task in glob.glob(f"/proc/{current}/task/*/children"):
            try:
                with open(task) as file:
                    pids += [int(child) for child in file.read().split()]
            except FileNotFoundError:
                pass
    return pids


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def run(args):
    servers = [int(pid) for pid in args.servers.split(",") if pid]
    fio_args = args.fio[1:] if args.fio and args.fio[0] == "--" else args.fio
    command = fio_args + ["--output-format=json", f"--output={args.out}.json"]
    with open(f"{args.out}.fio.log", "w") as log:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        # The window opens when the ramp ends (fio connects first, so it may start a few ms
        # into the ramp: the CPU rate there is the steady one).
        time.sleep(args.ramp)
        window_start = time.monotonic()
        server_start_s = sum(process_cpu_s(pid) for pid in servers)
        client_start_s = sum(process_cpu_s(pid) for pid in process_tree(process.pid))
        _, status, usage = os.wait4(process.pid, 0)
        window_s = time.monotonic() - window_start
        server_end_s = sum(process_cpu_s(pid) for pid in servers)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        with open(f"{args.out}.fio.log") as log:
            sys.stderr.write(log.read())
        raise SystemExit(f"fio failed with exit code {process.returncode}: {' '.join(command)}")
    client_end_s = usage.ru_utime + usage.ru_stime
    cpu = {
        "window_s": window_s,
        "wall_s": time.monotonic() - start,
        "server_cpu_s": max(server_end_s - server_start_s, 0.0),
        "client_cpu_s": max(client_end_s - client_start_s, 0.0),
        "server_pids": servers,
        "server_peak_rss_kib": {str(pid): peak_rss_kib(pid) for pid in servers},
    }
    with open(f"{args.out}.cpu.json", "w") as file:
        json.dump(cpu, file, indent=2)


# --- report ---------------------------------------------------------------------------------

def direction_figures(stats):
    latency = stats.get("lat_ns", {})
    percentiles = latency.get("percentile") or stats.get("clat_ns", {}).get("percentile", {})
    return {
        "iops": stats["iops"],
        "io_count": stats["total_ios"],
        "mb_per_s": stats["bw_bytes"] / 1e6,
        "latency_mean_us": latency.get("mean", 0.0) / 1000,
        "latency_p50_us": percentiles.get("50.000000", 0) / 1000,
        "latency_p99_us": percentiles.get("99.000000", 0) / 1000,
        "latency_p99_9_us": percentiles.get("99.900000", 0) / 1000,
    }


def parse_run(prefix):
    """One round's figures from PREFIX.json (fio) and PREFIX.cpu.json (run's accounting)."""
    with open(f"{prefix}.json") as file:
        report = json.load(file)
    (job,) = report["jobs"]
    if job["error"]:
        raise SystemExit(f"{prefix}.json: fio job failed with error {job['error']}")
    directions = [direction_figures(job[d]) for d in ("read", "write") if job[d]["total_ios"]]
    if not directions:
        raise SystemExit(f"{prefix}.json: fio did no I/O")
    if len(directions) == 1:
        figures = directions[0]
    else:
        # Mixed workload: rates add up, the mean is weighted by I/O count, and a percentile is
        # the worse of the two directions' (an upper bound of the mixed one).
        io_count = sum(d["io_count"] for d in directions)
        figures = {
            "iops": sum(d["iops"] for d in directions),
            "io_count": io_count,
            "mb_per_s": sum(d["mb_per_s"] for d in directions),
            "latency_mean_us": sum(d["latency_mean_us"] * d["io_count"]
                                   for d in directions) / io_count,
        }
        for key in ("latency_p50_us", "latency_p99_us", "latency_p99_9_us"):
            figures[key] = max(d[key] for d in directions)
    # fio's own accounting: its job thread only, over the measured runtime.
    runtime_s = job["job_runtime"] / 1000
    fio_cpu_s = (job["usr_cpu"] + job["sys_cpu"]) / 100 * runtime_s
    figures["fio_job_cpu_per_io_us"] = (fio_cpu_s / figures["io_count"] * 1e6
                                        if figures["io_count"] else None)
    with open(f"{prefix}.cpu.json") as file:
        cpu = json.load(file)
    # CPU per I/O = CPU rate over the window / the I/O rate fio measured.
    for part in ("server", "client"):
        rate = cpu[f"{part}_cpu_s"] / cpu["window_s"] if cpu["window_s"] > 0 else 0.0
        figures[f"{part}_cpu_per_io_us"] = rate / figures["iops"] * 1e6 if figures["iops"] else None
    if figures["server_cpu_per_io_us"] is not None and figures["client_cpu_per_io_us"] is not None:
        figures["cpu_per_io_us"] = figures["server_cpu_per_io_us"] + figures["client_cpu_per_io_us"]
    else:
        figures["cpu_per_io_us"] = None
    figures["server_peak_rss_mib"] = sum(cpu["server_peak_rss_kib"].values()) / 1024
    figures["cpu_window_s"] = cpu["window_s"]
    return figures


def median_round(rounds):
    """The round whose IOPS is the median (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r["iops"])
    return ordered[(len(ordered) - 1) // 2]


def ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def fmt(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


def replication_table(summary, workloads):
    """Markdown lines: each workload's figures for the replicated targets that ran, one column
    per target (empty when no weft cluster target ran)."""
    columns = [t for t in REPLICATION_TARGETS if any(t == key[1] for key in summary)]
    if not any(t.startswith("weft-rf") for t in columns):
        return []
    lines = ["", "Replication: weft's 3-node cluster (fio on node 1, which owns the vDisks) beside "
             "Ceph; CPU counts every server process of the cluster.", "",
             "| workload | figure | " + " | ".join(REPLICATION_TARGETS[t] for t in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for workload in workloads:
        if not any((workload, t) in summary for t in columns):
            continue
        for label, key, digits in REPLICATION_FIGURES:
            cells = [fmt(summary[(workload, t)][key], digits) if (workload, t) in summary else "-"
                     for t in columns]
            lines.append(f"| {workload} | {label} | " + " | ".join(cells) + " |")
    return lines


def replication_goals(summary):
    """Issue 7's target ratios: {name: {ratio, bound, limit, met}}, ratio None (and met None)
    when a target it needs did not run."""
    goals = {}
    for name, workload, key, numerator, denominator, bound, limit in REPLICATION_GOALS:
        top = summary.get((workload, numerator))
        bottom = summary.get((workload, denominator))
        value = ratio(top[key], bottom[key]) if top and bottom else None
        met = None if value is None else (value <= limit if bound == "max" else value >= limit)
        goals[name] = {"ratio": value, "bound": bound, "limit": limit, "met": met,
                       "needs": [numerator, denominator]}
    return goals


def replication_goal_lines(goals, targets):
    """Markdown lines for the goals once any replicated target ran; unmeasured ones say why."""
    if not any(t in REPLICATION_TARGETS for t in targets):
        return []
    lines = ["", "Issue 7 targets (read, not asserted):"]
    for name, goal in goals.items():
        sign = "<=" if goal["bound"] == "max" else ">="
        if goal["ratio"] is None:
            verdict = f"not measured (needs {' and '.join(goal['needs'])})"
        else:
            verdict = f"{goal['ratio']:.2f} -> {'met' if goal['met'] else 'NOT met'}"
        lines.append(f"- {name} (target {sign} {goal['limit']:g}): {verdict}")
    return lines


def write_chart(summary, targets, out_dir):
    """compare.png: QD1 mean latency and QD32 IOPS per target (log scale). False without gnuplot."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return False
    data = os.path.join(out_dir, "compare-chart.dat")
    with open(data, "w") as file:
        file.write("# target wr_qd1_lat_us rd_qd1_lat_us wr_qd32_iops rd_qd32_iops\n")
        for target in targets:
            row = [summary.get((w, target), {}).get(key)
                   for w, key in (("randwrite-4k-qd1", "latency_mean_us"),
                                  ("randread-4k-qd1", "latency_mean_us"),
                                  ("randwrite-4k-qd32", "iops"),
                                  ("randread-4k-qd32", "iops"))]
            file.write(target + " " + " ".join("NaN" if v is None else f"{v:.3f}" for v in row)
                       + "\n")
    png = os.path.join(out_dir, "compare.png")
    script = f"""
set terminal pngcairo size 1400,560 noenhanced font ',10'
set output '{png}'
set multiplot layout 1,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set grid ytics
set key top left
set xtics rotate by -30
set title '4 KiB QD1 mean latency (us, lower is better)'
plot '{data}' using 2:xtic(1) title 'randwrite' , '' using 3 title 'randread'
set title '4 KiB QD32 IOPS (higher is better)'
plot '{data}' using 4:xtic(1) title 'randwrite' , '' using 5 title 'randread'
unset multiplot
"""
    subprocess.run([gnuplot], input=script, text=True, check=True)
    return True


def report(args):
    runs = {}
    for path in sorted(glob.glob(os.path.join(args.results, "*.cpu.json"))):
        prefix = path[:-len(".cpu.json")]
        workload, target, round_number = os.path.basename(prefix).split(".")
        result = parse_run(prefix)
        result["round"] = int(round_number)
        runs.setdefault((workload, target), []).append(result)
    if not runs:
        raise SystemExit(f"{args.results}: no results")
    summary = {key: median_round(value) for key, value in runs.items()}
    targets = [t for t in TARGETS if any(t == key[1] for key in summary)]
    workloads = [w for w in WORKLOADS if any(w == key[0] for key in summary)]
    skipped = dict(item.split("=", 1) for item in args.skipped)

    lines = [f"fio, {args.runtime:g} s after {args.ramp:g} s ramp, median of {args.rounds} "
             f"round(s) by IOPS, {args.size >> 20} MiB image per target. Latency: fio's total "
             "(submit to completion). CPU/IO: server processes + fio's whole process, µs of "
             "CPU per I/O. RSS: servers' peak. ×weft: the target's figure over weft's.", "",
             "| workload | target | IOPS | MB/s | mean µs | p50 µs | p99 µs | p99.9 µs | "
             "CPU µs/IO | RSS MiB | IOPS ×weft | mean lat ×weft | CPU/IO ×weft |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios = {}
    for workload in workloads:
        weft = summary.get((workload, "weft"))
        for target in targets:
            r = summary.get((workload, target))
            if r is None:
                continue
            entry = {
                "iops": ratio(r["iops"], weft and weft["iops"]),
                "latency_mean": ratio(r["latency_mean_us"], weft and weft["latency_mean_us"]),
                "cpu_per_io": ratio(r["cpu_per_io_us"], weft and weft["cpu_per_io_us"]),
            }
            ratios.setdefault(workload, {})[target] = entry
            lines.append(
                f"| {workload} | {target} | {r['iops']:.0f} | {r['mb_per_s']:.1f} | "
                f"{r['latency_mean_us']:.1f} | {r['latency_p50_us']:.1f} | "
                f"{r['latency_p99_us']:.1f} | {r['latency_p99_9_us']:.1f} | "
                f"{fmt(r['cpu_per_io_us'], 1)} | {r['server_peak_rss_mib']:.0f} | "
                f"{fmt(entry['iops'], 2)} | {fmt(entry['latency_mean'], 2)} | "
                f"{fmt(entry['cpu_per_io'], 2)} |")

    # The goals: weft at least 5x better than each Ceph target.
    goals = {}
    for ceph in ("ceph-1osd", "ceph-3osd"):
        for workload in workloads:
            weft = summary.get((workload, "weft"))
            other = summary.get((workload, ceph))
            if not (weft and other):
                continue
            key = "latency_mean" if "qd1" in workload else "iops"
            better = (ratio(other["latency_mean_us"], weft["latency_mean_us"]) if key ==
                      "latency_mean" else ratio(weft["iops"], other["iops"]))
            goals[f"{workload} {key}: weft vs {ceph}"] = {
                "better_by": better, "met": better is not None and better >= GOAL_FACTOR}
            if workload.startswith("randwrite-4k") and weft["cpu_per_io_us"]:
                better = ratio(other["cpu_per_io_us"], weft["cpu_per_io_us"])
                goals[f"{workload} cpu_per_io: weft vs {ceph}"] = {
                    "better_by": better, "met": better is not None and better >= GOAL_FACTOR}
    if goals:
        lines += ["", f"Goals (weft at least {GOAL_FACTOR:g}x better than Ceph; read, not "
                  "asserted):"]
        for name, goal in goals.items():
            lines.append(f"- {name}: {fmt(goal['better_by'], 2)}x -> "
                         f"{'met' if goal['met'] else 'NOT met'}")
    lines += replication_table(summary, workloads)
    replication = replication_goals(summary)
    lines += replication_goal_lines(replication, targets)
    if "device-sync" in targets:
        lines += ["", "device-sync: fio's latency leaves the fdatasync out; 1 / IOPS (QD1) "
                  "includes it."]
    if skipped:
        lines += [""] + [f"- {name}: skipped: {why}" for name, why in skipped.items()]

    os.makedirs(args.out, exist_ok=True)
    chart = write_chart(summary, targets, args.out)
    lines += ["", "Chart: compare.png" if chart else "Chart: none (gnuplot not installed)"]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "compare.md"), "w") as file:
        file.write(table)
    output = {
        "config": {"runtime_s": args.runtime, "ramp_s": args.ramp, "rounds": args.rounds,
                   "size_bytes": args.size},
        "runs": [{"workload": w, "target": t, **r} for (w, t), rs in sorted(runs.items())
                 for r in rs],
        "summary": [{"workload": w, "target": t, **r} for (w, t), r in sorted(summary.items())],
        "ratios_against_weft": ratios,
        "goals": goals,
        "replication_goals": replication,
        "skipped": skipped,
        "chart": "compare.png" if chart else None,
    }
    with open(os.path.join(args.out, "compare.json"), "w") as file:
        json.dump(output, file, indent=2)
    print(table)


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--out", required=True)
    run_parser.add_argument("--ramp", type=float, required=True)
    run_parser.add_argument("--servers", default="")
    run_parser.add_argument("fio", nargs=argparse.REMAINDER)
    report_parser = commands.add_parser("report")
    report_parser.add_argument("--results", required=True)
    report_parser.add_argument("--out", required=True)
    report_parser.add_argument("--runtime", type=float, required=True)
    report_parser.add_argument("--ramp", type=float, required=True)
    report_parser.add_argument("--rounds", type=int, required=True)
    report_parser.add_argument("--size", type=int, required=True)
    report_parser.add_argument("--skipped", action="append", default=[])
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
