"""The write characterizer sends each write where it belongs, as its counters show
(stats.characterizer in `weft --json vdisk show`), and every path keeps the data.

(a) A sequential stream (fio rw=write bs=1M iodepth=8: 8 MiB outstanding, over
    --oplog-sequential-threshold's 1.5 MiB default) goes straight to the extent store:
    writes_sequential_bypass grows far more than writes_oplog.
(b) Random 4 KiB bursts at iodepth 4 (16 KiB outstanding) go to the OpLog: writes_oplog grows
    with every write, writes_sequential_bypass stays at 0.
(c) Sustained random 2 KiB writes at iodepth 64 into a tiny OpLog (weftd --oplog-size 32M)
    fill it faster than it drains: some writes go straight to the extent store
    (writes_oplog_full_bypass > 0).
(d) weftd --oplog off: the oplog counter group is absent, no write goes to an OpLog.
Every case ends with fio's verification of all it wrote (--verify=crc32c, do_verify).
"""

from weftlib import KIB, MIB, Cli, check, check_equal, fio_job_report, log, run, run_test

# Modest caches: these daemons test the write path, and several run on one machine.
DAEMON_ARGS = ["--cache-size", "64M", "--cache-ssd-size", "64M"]
VDISK_BYTES = 256 * MIB
# Twice the tiny OpLog, in 2 KiB writes: the log takes them as fast as 4 KiB ones, but the drain
# must read-modify-write a 4 KiB block of the extent store for each, so it falls behind and the
# log fills before the run ends (with 4 KiB writes the drain keeps up with fio).
SUSTAINED_BYTES = 64 * MIB
SUSTAINED_BLOCK = "2k"


def fio_write_verify(h, daemon, vdisk, name, *options):
    """A fio write job with crc32c headers, verified by fio after it (do_verify); returns the
    job's report."""
    output = h.path(f"{name}.json")
    run(["fio", f"--name={name}", "--ioengine=nbd", f"--uri={daemon.uri(vdisk)}",
         "--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0", "--randseed=2024",
         "--output-format=json", f"--output={output}", *options], cwd=h.work_dir)
    job = fio_job_report(output, name)
    check(job["write"]["io_bytes"] > 0, f"{name}: fio wrote nothing")
    check_equal(job["read"]["io_bytes"], job["write"]["io_bytes"], f"{name}: bytes verified")
    return job


def counters(cli, vdisk):
    """stats from `weft --json vdisk show`."""
    return cli.json("vdisk", "show", vdisk).get("stats", {})


def delta(before, after, group, name):
    return after.get(group, {}).get(name, 0) - before.get(group, {}).get(name, 0)


def characterizer_deltas(before, after):
    result = {name: delta(before, after, "characterizer", name)
              for name in ("writes_oplog", "writes_sequential_bypass", "writes_oplog_full_bypass")}
    result["writes"] = delta(before, after, "io", "writes")
    return result


def test_sequential_stream_bypasses(h):
    h.cli.create_vdisk("seq", f"{VDISK_BYTES // MIB}M")
    before = counters(h.cli, "seq")
    fio_write_verify(h, h.weftd, "seq", "sequential", "--rw=write", "--bs=1M", "--iodepth=8",
                     "--size=128M")
    moved = characterizer_deltas(before, counters(h.cli, "seq"))
    log(f"sequential stream: {moved}")
    check(moved["writes"] >= 128, f"128 writes of 1 MiB counted as {moved['writes']}")
    check(moved["writes_sequential_bypass"] >= moved["writes"] // 2,
          f"a sequential stream at iodepth 8 bypassed the OpLog for only "
          f"{moved['writes_sequential_bypass']} of {moved['writes']} writes")
    check(moved["writes_sequential_bypass"] >= 4 * moved["writes_oplog"],
          f"a sequential stream went to the OpLog {moved['writes_oplog']} times and bypassed it "
          f"only {moved['writes_sequential_bypass']} times")


def test_random_bursts_go_to_the_oplog(h):
    h.cli.create_vdisk("rand", f"{VDISK_BYTES // MIB}M")
    before = counters(h.cli, "rand")
    fio_write_verify(h, h.weftd, "rand", "random-bursts", "--rw=randwrite", "--bs=4k",
                     "--iodepth=4", "--size=32M", "--thinktime=50000",
                     "--thinktime_blocks=1024")
    moved = characterizer_deltas(before, counters(h.cli, "rand"))
    log(f"random bursts: {moved}")
    check(moved["writes"] >= 32 * MIB // (4 * KIB), f"8192 writes counted as {moved['writes']}")
    check_equal(moved["writes_sequential_bypass"], 0,
                "random 4 KiB writes at iodepth 4 counted as sequential")
    check(moved["writes_oplog"] >= moved["writes"] * 99 // 100,
          f"only {moved['writes_oplog']} of {moved['writes']} random 4 KiB writes went to the "
          "OpLog")


def test_full_oplog_falls_through(h):
    daemon = h.new_daemon(name="tiny", extra_args=DAEMON_ARGS + ["--oplog-size", "32M"])
    daemon.start()
    cli = Cli(h.args.weft, daemon)
    cli.create_vdisk("full", f"{VDISK_BYTES // MIB}M")
    oplog = counters(cli, "full").get("oplog", {})
    check_equal(oplog.get("log_bytes_max"), 32 * MIB, "stats.oplog.log_bytes_max with 32M")
    before = counters(cli, "full")
    fio_write_verify(h, daemon, "full", "sustained", "--rw=randwrite",
                     f"--bs={SUSTAINED_BLOCK}", "--iodepth=64", f"--size={SUSTAINED_BYTES}")
    after = counters(cli, "full")
    moved = characterizer_deltas(before, after)
    log(f"sustained random writes into a 32 MiB OpLog: {moved}; oplog {after.get('oplog')}")
    check(moved["writes_oplog_full_bypass"] > 0,
          f"{moved['writes']} random writes at iodepth 64 never found the 32 MiB OpLog full")
    check(moved["writes_oplog"] > 0, "no write went to the OpLog at all")
    check_equal(after.get("oplog", {}).get("failed"), 0, "stats.oplog.failed")
    daemon.stop()


def test_oplog_off(h):
    daemon = h.new_daemon(name="nolog", extra_args=DAEMON_ARGS + ["--oplog", "off"])
    daemon.start()
    cli = Cli(h.args.weft, daemon)
    cli.create_vdisk("direct", "64M")
    fio_write_verify(h, daemon, "direct", "oplog-off", "--rw=randwrite", "--bs=4k",
                     "--iodepth=8", "--size=16M")
    fio_write_verify(h, daemon, "direct", "oplog-off-seq", "--rw=write", "--bs=1M",
                     "--iodepth=8", "--size=32M", "--offset=32M")
    stats = counters(cli, "direct")
    log(f"--oplog off: {stats}")
    check("oplog" not in stats or stats["oplog"] == {},
          f"weftd --oplog off reports OpLog counters: {stats.get('oplog')}")
    check(stats.get("io", {}).get("writes", 0) >= 4096 + 32, f"writes not counted: {stats}")
    check_equal(stats.get("characterizer", {}).get("writes_oplog", 0), 0,
                "writes sent to the OpLog with --oplog off")
    daemon.stop()


def main(h):
    for step in (test_sequential_stream_bypasses, test_random_bursts_go_to_the_oplog,
                 test_full_oplog_falls_through, test_oplog_off):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)


if __name__ == "__main__":
    run_test(main, description=__doc__, weftd_args=DAEMON_ARGS)
