"""Turns bench/nbd-compare's fio JSON files into a Markdown table and one JSON summary.

Input: RESULTS/WORKLOAD.TARGET.ROUND.json (one fio job each). For every workload and target the
round with the median IOPS is reported. Latency is fio's total latency (submission to
completion, lat_ns), in microseconds.
"""

import argparse
import glob
import json
import os
import sys

TARGETS = ["weft", "qemu-nbd", "device", "device-sync"]
WORKLOADS = ["randwrite-4k-qd1", "randread-4k-qd1", "randwrite-4k-qd32", "randread-4k-qd32",
             "write-1m-qd8"]
# The targets: weft QD1 mean latency within 1.5x of qemu-nbd's, QD32 IOPS >= 0.7x.
QD1_LATENCY_RATIO_MAX = 1.5
QD32_IOPS_RATIO_MIN = 0.7


def parse_fio(path):
    with open(path) as file:
        report = json.load(file)
    (job,) = report["jobs"]
    if job["error"]:
        raise SystemExit(f"{path}: fio job failed with error {job['error']}")
    direction = "read" if job["read"]["io_bytes"] > job["write"]["io_bytes"] else "write"
    stats = job[direction]
    latency = stats.get("lat_ns", {})
    percentiles = latency.get("percentile") or stats.get("clat_ns", {}).get("percentile", {})
    return {
        "iops": stats["iops"],
        "mb_per_s": stats["bw_bytes"] / 1e6,
        "latency_mean_us": latency.get("mean", 0.0) / 1000,
        "latency_p99_us": percentiles.get("99.000000", 0) / 1000,
    }


def median_round(rounds):
    """The round whose IOPS is the median (the lower middle one for an even count)."""
    ordered = sorted(rounds, key=lambda r: r["iops"])
    return ordered[(len(ordered) - 1) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--runtime", type=float, required=True)
    parser.add_argument("--ramp", type=float, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args()

    runs = {}
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        workload, target, round_number = os.path.basename(path)[:-len(".json")].split(".")
        result = parse_fio(path)
        result["round"] = int(round_number)
        runs.setdefault((workload, target), []).append(result)
    summary = {key: median_round(value) for key, value in runs.items()}

    lines = [f"fio, {args.runtime:g} s after {args.ramp:g} s ramp, median of {args.rounds} "
             f"round(s), {args.size >> 20} MiB image", "",
             "| workload | target | IOPS | MB/s | mean µs | p99 µs |",
             "|---|---|---:|---:|---:|---:|"]
    for workload in WORKLOADS:
        for target in TARGETS:
            if (workload, target) not in summary:
                continue
            r = summary[(workload, target)]
            lines.append(f"| {workload} | {target} | {r['iops']:.0f} | {r['mb_per_s']:.1f} | "
                         f"{r['latency_mean_us']:.1f} | {r['latency_p99_us']:.1f} |")

    lines += ["", "| workload | weft/qemu-nbd IOPS | weft/qemu-nbd mean latency | "
              "weft/device IOPS | weft/device-sync mean latency |", "|---|---:|---:|---:|---:|"]
    ratios = {}
    for workload in WORKLOADS:
        weft = summary.get((workload, "weft"))
        qemu = summary.get((workload, "qemu-nbd"))
        device = summary.get((workload, "device"))
        if not (weft and qemu and device):
            continue
        ratios[workload] = {
            "iops_vs_qemu_nbd": weft["iops"] / qemu["iops"] if qemu["iops"] else None,
            "latency_vs_qemu_nbd": (weft["latency_mean_us"] / qemu["latency_mean_us"]
                                    if qemu["latency_mean_us"] else None),
            "iops_vs_device": weft["iops"] / device["iops"] if device["iops"] else None,
        }
        device_sync = summary.get((workload, "device-sync"))
        ratios[workload]["latency_vs_device_sync"] = (
            weft["latency_mean_us"] / device_sync["latency_mean_us"]
            if device_sync and device_sync["latency_mean_us"] else None)
        ratio = ratios[workload]
        sync_ratio = ratio["latency_vs_device_sync"]
        lines.append(f"| {workload} | {ratio['iops_vs_qemu_nbd']:.2f} | "
                     f"{ratio['latency_vs_qemu_nbd']:.2f} | {ratio['iops_vs_device']:.2f} | "
                     f"{'-' if sync_ratio is None else f'{sync_ratio:.2f}'} |")

    targets = {}
    for workload in ("randwrite-4k-qd1", "randread-4k-qd1"):
        if workload in ratios:
            value = ratios[workload]["latency_vs_qemu_nbd"]
            targets[f"{workload} mean latency <= {QD1_LATENCY_RATIO_MAX}x qemu-nbd"] = {
                "ratio": value, "met": value is not None and value <= QD1_LATENCY_RATIO_MAX}
    for workload in ("randwrite-4k-qd32", "randread-4k-qd32"):
        if workload in ratios:
            value = ratios[workload]["iops_vs_qemu_nbd"]
            targets[f"{workload} IOPS >= {QD32_IOPS_RATIO_MIN}x qemu-nbd"] = {
                "ratio": value, "met": value is not None and value >= QD32_IOPS_RATIO_MIN}
    lines += ["", "Targets:"]
    for name, target in targets.items():
        lines.append(f"- {name}: {target['ratio']:.2f} -> {'met' if target['met'] else 'NOT met'}")
    print("\n".join(lines))

    output = {
        "config": {"runtime_s": args.runtime, "ramp_s": args.ramp, "rounds": args.rounds,
                   "size_bytes": args.size},
        "runs": [{"workload": w, "target": t, **r} for (w, t), rs in sorted(runs.items())
                 for r in rs],
        "summary": [{"workload": w, "target": t, **r} for (w, t), r in sorted(summary.items())],
        "ratios": ratios,
        "targets": targets,
    }
    with open(args.json, "w") as file:
        json.dump(output, file, indent=2)
    print(f"\nJSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
