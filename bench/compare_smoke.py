"""Smoke test of bench/compare (CTest bench_compare_smoke): the harness itself, not the figures.

Runs `bench/compare --quick --targets device,weft,weft-rf2 --runtime 1 --ramp 0 --size 64M` into a
temp dir and checks that it parsed fio's JSON (every workload has a row per target with positive
IOPS and latency figures, CPU per I/O and weft's RSS), wrote the Markdown table and the JSON, noted
the skipped target, and drew the chart when gnuplot is installed. No timing assertions.

Usage: /usr/bin/python3 bench/compare_smoke.py --weftd PATH --weft PATH [--keep]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

WORKLOADS = ["randwrite-4k-qd1", "randread-4k-qd1", "randwrite-4k-qd32", "randread-4k-qd32",
             "write-1m-qd8"]
TARGETS = ["device", "weft"]


def check(condition, message):
    if not condition:
        raise SystemExit(f"bench_compare_smoke: FAILED: {message}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--weft", required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    compare = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare")
    out_dir = tempfile.mkdtemp(prefix="weft-compare-smoke.", dir="/var/tmp")
    command = [compare, "--quick", "--targets", ",".join(TARGETS) + ",weft-rf2", "--runtime", "1",
               "--ramp", "0", "--size", "64M", "--out", out_dir, "--weftd", args.weftd,
               "--weft", args.weft]
    print("running:", " ".join(command), file=sys.stderr)
    try:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out_dir, "compare.md")) as file:
            table = file.read()
        with open(os.path.join(out_dir, "compare.json")) as file:
            report = json.load(file)

        summary = {(r["workload"], r["target"]): r for r in report["summary"]}
        for workload in WORKLOADS:
            for target in TARGETS:
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
            check(report["ratios_against_weft"][workload]["weft"]["iops"] == 1.0,
                  f"{workload}: weft's ratio against itself is not 1")
        check(len(report["runs"]) == len(WORKLOADS) * len(TARGETS), "one run per workload/target")
        check("weft-rf2" in report["skipped"] and "weft-rf2: skipped" in table,
              "weft-rf2 not reported as skipped")
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
