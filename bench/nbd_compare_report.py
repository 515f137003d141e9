"""Turns bench/nbd-compare's fio JSON files into a Markdown table and one JSON summary.

Input: RESULTS/WORKLOAD.TARGET.ROUND.json (one fio job each) and, for weft targets,
STATS/WORKLOAD.TARGET.ROUND.{before,after}.json (weftd's admin API: {"node": ..., "vdisk": ...},
or {} when weftd did not answer). For every workload and target the round with the median IOPS
is reported. Latency is fio's total latency (submission to completion, lat_ns), in microseconds.
"""

import argparse
import glob
import json
import os
import sys

TARGETS = ["weft", "weft-oplog-off", "weft-small-cache", "qemu-nbd", "qemu-nbd-pagecache",
           "device", "device-sync"]
BASE_WORKLOADS = ["randwrite-4k-qd1", "randread-4k-qd1", "randwrite-4k-qd32", "randread-4k-qd32",
                  "write-1m-qd8"]
WORKLOADS = BASE_WORKLOADS + ["randread-4k-qd1-cached", "randread-4k-qd1-uncached"]
# The first issue's targets: weft QD1 mean latency within 1.5x of qemu-nbd's, QD32 IOPS >= 0.7x.
QD1_LATENCY_RATIO_MAX = 1.5
QD32_IOPS_RATIO_MIN = 0.7
# The OpLog and cache issue's targets: OpLog-on QD1 4 KiB write latency <= 0.7x OpLog-off;
# cache-hit QD1 4 KiB read latency within 1.2x of qemu-nbd reading from the page cache.
OPLOG_QD1_LATENCY_RATIO_MAX = 0.7
CACHE_HIT_LATENCY_RATIO_MAX = 1.2


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


def load_json(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def counters(snapshot):
    """Flattens weftd's stats into {"cache.NAME": n, "GROUP.NAME": n} (integers only)."""
    flat = {}
    for name, value in snapshot.get("node", {}).get("cache", {}).items():
        if isinstance(value, int):
            flat[f"cache.{name}"] = value
    for group, values in snapshot.get("vdisk", {}).get("stats", {}).items():
        if isinstance(values, dict):
            for name, value in values.items():
                if isinstance(value, int):
                    flat[f"{group}.{name}"] = value
    return flat


def stats_delta(stats_dir, run):
    """What weftd counted during one run (after - before), or None without stats."""
    if not stats_dir:
        return None
    before = counters(load_json(os.path.join(stats_dir, f"{run}.before.json")))
    after = counters(load_json(os.path.join(stats_dir, f"{run}.after.json")))
    if not after:
        return None
    return {name: value - before.get(name, 0) for name, value in after.items()}


def cache_hit_ratio(delta):
    if not delta:
        return None
    hits = sum(value for name, value in delta.items() if name.startswith("cache.hits"))
    misses = delta.get("cache.misses", 0)
    return hits / (hits + misses) if hits + misses else None


def ratio(numerator, denominator):
    return numerator / denominator if numerator is not None and denominator else None


def fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--stats")
    parser.add_argument("--json", required=True)
    parser.add_argument("--runtime", type=float, required=True)
    parser.add_argument("--ramp", type=float, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--cached-set", type=int, default=0)
    parser.add_argument("--small-cache", type=int, default=0)
    parser.add_argument("--skipped", action="append", default=[])
    args = parser.parse_args()

    runs = {}
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        run = os.path.basename(path)[:-len(".json")]
        workload, target, round_number = run.split(".")
        result = parse_fio(path)
        result["round"] = int(round_number)
        result["weft_stats"] = stats_delta(args.stats, run)
        runs.setdefault((workload, target), []).append(result)
    # The round whose IOPS is the median (the lower middle one for an even count).
    summary = {key: sorted(value, key=lambda r: r["iops"])[(len(value) - 1) // 2]
               for key, value in runs.items()}

    def get(workload, target):
        return summary.get((workload, target))

    def mean_us(workload, target):
        run = get(workload, target)
        return run["latency_mean_us"] if run else None

    def iops(workload, target):
        run = get(workload, target)
        return run["iops"] if run else None

    lines = [f"fio, {args.runtime:g} s after {args.ramp:g} s ramp, median of {args.rounds} "
             f"round(s), {args.size >> 20} MiB image; cached set {args.cached_set >> 20} MiB "
             f"(after a warm-up pass), weft-small-cache has a {args.small_cache >> 20} MiB cache",
             "", "| workload | target | IOPS | MB/s | mean µs | p99 µs |",
             "|---|---|---:|---:|---:|---:|"]
    for workload in WORKLOADS:
        for target in TARGETS:
            r = get(workload, target)
            if r:
                lines.append(f"| {workload} | {target} | {r['iops']:.0f} | {r['mb_per_s']:.1f} | "
                             f"{r['latency_mean_us']:.1f} | {r['latency_p99_us']:.1f} |")

    ratio_lines = ["", "| workload | weft/qemu-nbd IOPS | weft/qemu-nbd mean latency | "
                   "weft/device IOPS | weft/device-sync mean latency |",
                   "|---|---:|---:|---:|---:|"]
    ratios = {}
    for workload in BASE_WORKLOADS:
        if not (get(workload, "weft") and get(workload, "qemu-nbd") and get(workload, "device")):
            continue
        ratios[workload] = {
            "iops_vs_qemu_nbd": ratio(iops(workload, "weft"), iops(workload, "qemu-nbd")),
            "latency_vs_qemu_nbd": ratio(mean_us(workload, "weft"), mean_us(workload, "qemu-nbd")),
            "iops_vs_device": ratio(iops(workload, "weft"), iops(workload, "device")),
            "latency_vs_device_sync": ratio(mean_us(workload, "weft"),
                                            mean_us(workload, "device-sync")),
        }
        r = ratios[workload]
        ratio_lines.append(f"| {workload} | {fmt(r['iops_vs_qemu_nbd'])} | "
                     f"{fmt(r['latency_vs_qemu_nbd'])} | {fmt(r['iops_vs_device'])} | "
                     f"{fmt(r['latency_vs_device_sync'])} |")
    if ratios:
        lines += ratio_lines

    # The OpLog's and the cache's comparisons: (name, value, (relation, limit) or None).
    comparisons = [
        ("randwrite-4k-qd1 mean latency, weft / weft-oplog-off",
         ratio(mean_us("randwrite-4k-qd1", "weft"), mean_us("randwrite-4k-qd1", "weft-oplog-off")),
         ("<=", OPLOG_QD1_LATENCY_RATIO_MAX)),
        ("randwrite-4k-qd32 IOPS, weft / weft-oplog-off",
         ratio(iops("randwrite-4k-qd32", "weft"), iops("randwrite-4k-qd32", "weft-oplog-off")),
         None),
        ("write-1m-qd8 IOPS, weft / weft-oplog-off",
         ratio(iops("write-1m-qd8", "weft"), iops("write-1m-qd8", "weft-oplog-off")), None),
        ("randread-4k-qd1-cached mean latency, weft / qemu-nbd-pagecache",
         ratio(mean_us("randread-4k-qd1-cached", "weft"),
               mean_us("randread-4k-qd1-cached", "qemu-nbd-pagecache")),
         ("<=", CACHE_HIT_LATENCY_RATIO_MAX)),
        ("randread-4k-qd1-cached mean latency, weft / qemu-nbd (device reads)",
         ratio(mean_us("randread-4k-qd1-cached", "weft"),
               mean_us("randread-4k-qd1-cached", "qemu-nbd")), None),
        ("randread-4k-qd1-uncached mean latency, weft-small-cache / qemu-nbd",
         ratio(mean_us("randread-4k-qd1-uncached", "weft-small-cache"),
               mean_us("randread-4k-qd1-uncached", "qemu-nbd")), None),
        ("mean read latency, weft cache miss (uncached) / hit (cached)",
         ratio(mean_us("randread-4k-qd1-uncached", "weft-small-cache"),
               mean_us("randread-4k-qd1-cached", "weft")), None),
    ]
    comparisons = [c for c in comparisons if c[1] is not None]
    if comparisons:
        lines += ["", "| OpLog and cache | ratio | target |", "|---|---:|---|"]
        for name, value, limit in comparisons:
            verdict = ""
            if limit:
                verdict = f"{limit[0]} {limit[1]}x: {'met' if value <= limit[1] else 'NOT met'}"
            lines.append(f"| {name} | {value:.2f} | {verdict} |")

    # What weftd counted in the reported runs (when its admin API has the stats).
    counted = [(w, t, get(w, t)["weft_stats"]) for w in WORKLOADS for t in TARGETS
               if get(w, t) and get(w, t)["weft_stats"]]
    if counted:
        lines += ["", "| workload | target | cache hit ratio | writes to OpLog | sequential bypass "
                  "| OpLog-full bypass |", "|---|---|---:|---:|---:|---:|"]
        for workload, target, delta in counted:
            lines.append(
                f"| {workload} | {target} | {fmt(cache_hit_ratio(delta))} | "
                f"{delta.get('characterizer.writes_oplog', '-')} | "
                f"{delta.get('characterizer.writes_sequential_bypass', '-')} | "
                f"{delta.get('characterizer.writes_oplog_full_bypass', '-')} |")

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
    for name, value, limit in comparisons:
        if limit:
            targets[f"{name} {limit[0]} {limit[1]}x"] = {"ratio": value, "met": value <= limit[1]}
    lines += ["", "Targets:"]
    for name, target in targets.items():
        lines.append(f"- {name}: {fmt(target['ratio'])} -> {'met' if target['met'] else 'NOT met'}")
    for note in args.skipped:
        lines.append(f"- skipped {note}")
    print("\n".join(lines))

    output = {
        "config": {"runtime_s": args.runtime, "ramp_s": args.ramp, "rounds": args.rounds,
                   "size_bytes": args.size, "cached_set_bytes": args.cached_set,
                   "small_cache_bytes": args.small_cache},
        "runs": [{"workload": w, "target": t, **r} for (w, t), rs in sorted(runs.items())
                 for r in rs],
        "summary": [{"workload": w, "target": t, **r} for (w, t), r in sorted(summary.items())],
        "ratios": ratios,
        "oplog_and_cache": {name: value for name, value, _ in comparisons},
        "targets": targets,
        "skipped": args.skipped,
    }
    with open(args.json, "w") as file:
        json.dump(output, file, indent=2)
    print(f"\nJSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
