"""Smoke test of bench/compare (CTest bench_compare_smoke): the harness itself, not the figures.

Runs `bench/compare --quick --targets device,weft,weft-rf1,weft-rf2 --runtime 1 --ramp 0 --size
64M` into a temp dir and checks that it parsed fio's JSON (every workload has a row per target with
positive IOPS and latency figures, CPU per I/O and weft's RSS), wrote the Markdown table and the
JSON, put weft RF1 (and RF2) in the replication table with issue 7's target ratios (RF2 either ran,
and its ratio against RF1 is there, or is reported skipped with the cluster's reason: a build
without replication refuses RF2), stopped every process of the weft cluster (ZooKeeper and three
weftd) by the end, and drew the chart when gnuplot is installed. No timing assertions.

Usage: /usr/bin/python3 bench/compare_smoke.py --weftd PATH --weft PATH [--keep]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

WORKLOADS = ["randwrite-4k-qd1", "randread-4k-qd1", "randwrite-4k-qd32", "randread-4k-qd32",
             "write-1m-qd8"]
TARGETS = ["device", "weft", "weft-rf1"]
# Runs when the cluster accepts an RF2 container, else is reported skipped.
MAYBE_TARGET = "weft-rf2"


def check(condition, message):
    if not condition:
        raise SystemExit(f"bench_compare_smoke: FAILED: {message}")


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purpose (its parent has not reaped it yet).
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rsplit(")", 1)[1].split()[0] != "Z"


def check_cluster_stopped(work_base):
    (work,) = glob.glob(os.path.join(work_base, "weft-compare.*"))
    with open(os.path.join(work, "weft-cluster", "pids")) as file:
        processes = [line.split() for line in file if line.strip()]
    names = sorted(name for name, _ in processes)
    check(names == ["node1", "node2", "node3", "zookeeper"], f"cluster processes {names}")
    for name, pid in processes:
        check(not process_alive(int(pid)), f"{name} (pid {pid}) still runs after bench/compare")


def check_replication(report, table, ran):
    check("| workload | figure | weft RF1 |" in table, "no replication table with weft RF1")
    goals = report["replication_goals"]
    check(len(goals) == 4, f"{len(goals)} replication goals")
    rf2_goal = goals["RF2 QD1 4 KiB write latency / RF1"]
    check("RF2 QD1 4 KiB write latency / RF1 (target <= 2)" in table, "no RF2/RF1 goal line")
    if MAYBE_TARGET in ran:
        check(rf2_goal["ratio"] is not None and rf2_goal["ratio"] > 0, "no RF2/RF1 ratio")
        check("| weft RF1 | weft RF2 |" in table, "weft RF2 not beside RF1")
    else:
        check(rf2_goal["ratio"] is None, "an RF2/RF1 ratio without RF2")
        reason = report["skipped"].get(MAYBE_TARGET, "")
        check("refused the container" in reason, f"weft-rf2 neither ran nor refused: {reason!r}")
        check(f"{MAYBE_TARGET}: skipped: the cluster refused" in table, "weft-rf2 skip not noted")
    # Ceph did not run: its goals say what they need instead of a figure.
    check(goals["QD32 4 KiB write IOPS weft RF1 / Ceph size 1"]["ratio"] is None,
          "a ratio against Ceph that did not run")
    check("not measured (needs weft-rf1 and ceph-1osd)" in table, "unmeasured goal not noted")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--weft", required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    compare = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare")
    out_dir = tempfile.mkdtemp(prefix="weft-compare-smoke.", dir="/var/tmp")
    # compare's work dir goes here and is kept, to check its cluster's PIDs afterwards.
    work_base = os.path.join(out_dir, "work")
    os.mkdir(work_base)
    command = [compare, "--quick", "--targets", ",".join(TARGETS + [MAYBE_TARGET]), "--runtime",
               "1", "--ramp", "0", "--size", "64M", "--out", out_dir, "--dir", work_base,
               "--keep", "--weftd", args.weftd, "--weft", args.weft]
    print("running:", " ".join(command), file=sys.stderr)
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out_dir, "compare.md")) as file:
            table = file.read()
        with open(os.path.join(out_dir, "compare.json")) as file:
            report = json.load(file)

        summary = {(r["workload"], r["target"]): r for r in report["summary"]}
        ran = TARGETS + ([MAYBE_TARGET] if MAYBE_TARGET not in report["skipped"] else [])
        for workload in WORKLOADS:
            for target in ran:
                row = summary.get((workload, target))
                check(row is not None, f"no figures for {workload} on {target}")
                check(row["iops"] > 0 and row["io_count"] > 0, f"{workload} {target}: no I/O")
                for key in ("latency_mean_us", "latency_p50_us", "latency_p99_us",
                            "latency_p99_9_us"):
                    check(row[key] > 0, f"{workload} {target}: {key} is {row[key]}")
                check(row["latency_p50_us"] <= row["latency_p99_us"] <= row["latency_p99_9_us"],
                      f"{workload} {target}: percentiles out of order")
                check(row["cpu_per_io_us"] is not None and row["cpu_per_io_us"] >= 0,
                      f"{workload} {target}: no CPU per I/O")
                check(f"| {workload} | {target} | {row['iops']:.0f} |" in table,
                      f"table has no row for {workload} on {target}")
            check(summary[(workload, "weft")]["server_peak_rss_mib"] > 0,
                  f"{workload}: no peak RSS for weftd")
            check(summary[(workload, "weft-rf1")]["server_peak_rss_mib"] > 0,
                  f"{workload}: no peak RSS for the weft cluster")
            check(report["ratios_against_weft"][workload]["weft"]["iops"] == 1.0,
                  f"{workload}: weft's ratio against itself is not 1")
        check(len(report["runs"]) == len(WORKLOADS) * len(ran), "one run per workload/target")
        check_replication(report, table, ran)
        check_cluster_stopped(work_base)
        if shutil.which("gnuplot"):
            check(os.path.getsize(os.path.join(out_dir, "compare.png")) > 0, "no chart")
        else:
            check("gnuplot not installed" in table, "chart absence not noted")
        print("bench_compare_smoke: ok", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {out_dir}", file=sys.stderr)
        else:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
