"""The Unified Cache serves reads without ever serving stale data, as its counters show.

weftd runs with a 16 MiB memory cache and a 32 MiB SSD tier (--cache-size 16M
--cache-ssd-size 32M); a vDisk's 256 MiB working set is written with fio's crc32c headers (one
per 4 KiB) and left to drain from the OpLog, so that reads go through the cache.
1. Larger than the cache: fio random reads over the 256 MiB with a skewed (zipf) distribution,
   reads of every block of 128 MiB twice in a row (promoting more blocks than memory and the SSD
   tier hold), random reads over those 128 MiB, every block read checked against its header,
   and a random read/write mix over 32 MiB (fio verifies what it wrote). Verification
   passes and the cache counters (the node's "cache" in `weft --json status`) show hits (in
   memory and in the SSD tier), misses, promotions, invalidations, evictions to the SSD tier
   and evictions out of the cache.
2. A working set that fits (8 MiB, each block read twice, then four more passes over it): hits
   grow far more than misses.
3. Coherence: blocks are read twice (cached, then promoted), overwritten (through the OpLog,
   and with a write large enough to bypass it), and read twice more: the new data every time,
   before and after the OpLog drains the overwrite.
Finally the whole 256 MiB is read and verified once more.
"""

from weftlib import KIB, MIB, check, check_equal, fio_job_report, log, nbd_handle, pattern_bytes
from weftlib import run, run_test

WORKING_SET_BYTES = 256 * MIB
SMALL_SET_BYTES = 8 * MIB
MIXED_REGION_BYTES = 32 * MIB
PAIRS_REGION_BYTES = 128 * MIB
BLOCK_BYTES = 4 * KIB
VDISK = "cached"


def fio(h, name, *options, verify=True):
    """A fio job on the vDisk, with crc32c verification unless told otherwise; returns its
    report."""
    output = h.path(f"{name}.json")
    verify_options = ["--verify=crc32c", "--verify_fatal=1", "--verify_state_save=0"]
    run(["fio", f"--name={name}", "--ioengine=nbd", f"--uri={h.weftd.uri(VDISK)}",
         *(verify_options if verify else []), "--randseed=31337", "--output-format=json",
         f"--output={output}", *options], cwd=h.work_dir)
    return fio_job_report(output, name)


def read_verify(h, name, size_bytes, *options):
    """Random 4 KiB reads over [0, size_bytes): a read-only fio job checks each block's crc32c
    header as it reads it. `options` come last, so they override the defaults."""
    job = fio(h, name, "--rw=randread", f"--bs={BLOCK_BYTES}", "--iodepth=8",
              f"--size={size_bytes}", *options)
    check(job["read"]["io_bytes"] > 0, f"{name}: fio read nothing")
    return job


def cache_counters(h):
    """The node's cache counters from `weft --json status`."""
    cache = h.cli.json("status").get("cache", {})
    check(cache, "weft --json status has no cache counters")
    return cache


def hits(cache):
    return sum(value for name, value in cache.items() if name.startswith("hits"))


def moved(before, after, name):
    return after.get(name, 0) - before.get(name, 0)


def fill_working_set(h):
    h.cli.create_vdisk(VDISK, f"{WORKING_SET_BYTES // MIB}M")
    # 1 MiB writes (a header every 4 KiB) at iodepth 8: mostly past the OpLog, and what went to
    # it drains before the reads start.
    job = fio(h, "fill", "--rw=write", "--bs=1M", "--verify_interval=4k", "--iodepth=8",
              f"--size={WORKING_SET_BYTES}", "--do_verify=0")
    check_equal(job["write"]["io_bytes"], WORKING_SET_BYTES, "bytes written by the fill")
    h.weftd.wait_oplog_drained(VDISK)


def test_larger_than_the_cache(h):
    before = cache_counters(h)
    check_equal(before.get("memory_bytes_max"), 16 * MIB, "cache.memory_bytes_max with 16M")
    check_equal(before.get("ssd_bytes_max"), 32 * MIB, "cache.ssd_bytes_max with 32M")
    # zipf over the 256 MiB: a hot core read again and again (memory hits, promotions) and a
    # long tail that misses and pushes single-touch blocks out of the cache.
    read_verify(h, "zipf-reads", WORKING_SET_BYTES, "--random_distribution=zipf:1.1",
                "--norandommap", f"--io_size={64 * MIB}")
    # Every block of a 128 MiB region read twice in a row (at iodepth 1, so that the second
    # read finds the first one's fill): all are promoted, far more than the multi-touch pool
    # holds, so they go down to the SSD tier, and more than it holds, so some go out of it.
    read_verify(h, "read-pairs", PAIRS_REGION_BYTES, "--rw=randread:2",
                "--rw_sequencer=identical", "--iodepth=1")
    # Random reads over the same region (another seed): many find their block in the SSD tier.
    read_verify(h, "ssd-reads", PAIRS_REGION_BYTES, "--randseed=4", "--norandommap",
                f"--io_size={16 * MIB}")
    # Reads and overwrites among cached blocks. fio verifies what it wrote; it can only do so
    # with its random map (each block at most once), hence uniform over a smaller region.
    fio(h, "mixed", "--rw=randrw", "--rwmixread=70", f"--bs={BLOCK_BYTES}", "--iodepth=8",
        f"--size={MIXED_REGION_BYTES}")
    h.weftd.wait_oplog_drained(VDISK)
    after = cache_counters(h)
    log(f"cache counters after the large working set: {after}")
    for name in ("misses", "fills", "promotions", "hits_ssd", "evictions_single",
                 "evictions_multi_to_ssd", "invalidations"):
        check(moved(before, after, name) > 0, f"cache.{name} did not grow over a 256 MiB "
              f"working set in a 16 MiB cache: {before.get(name)} -> {after.get(name)}")
    check(hits(after) > hits(before), f"no cache hit in a skewed read pattern: {after}")
    out_of_multi_or_ssd = (moved(before, after, "evictions_ssd")
                           + moved(before, after, "evictions_multi"))
    check(out_of_multi_or_ssd > 0, "no promoted block left the cache although more were "
          f"promoted than memory and SSD tier hold: {after}")
    check_equal(after.get("ssd_read_errors", 0), 0, "cache.ssd_read_errors")
    check(after.get("memory_bytes_used", 0) <= after.get("memory_bytes_max", 0),
          f"the cache uses more memory than its maximum: {after}")


def test_working_set_that_fits(h):
    # The first pass reads every block twice in a row (iodepth 1), which promotes it: a block
    # read once stays in the single-touch pool, a quarter of the memory, by design. This pass
    # goes without verification: a verifying read job stops after --size bytes, which would
    # cover half the blocks; the next passes verify them all.
    fio(h, "small-set-first-pass", "--rw=randread:2", "--rw_sequencer=identical",
        f"--bs={BLOCK_BYTES}", "--iodepth=1", f"--size={SMALL_SET_BYTES}",
        f"--io_size={2 * SMALL_SET_BYTES}", verify=False)
    before = cache_counters(h)
    passes = 4
    for seed in range(1, passes + 1):
        read_verify(h, f"small-set-pass-{seed}", SMALL_SET_BYTES, f"--randseed={seed}")
    after = cache_counters(h)
    hits_moved = hits(after) - hits(before)
    misses_moved = moved(before, after, "misses")
    blocks = SMALL_SET_BYTES // BLOCK_BYTES
    log(f"8 MiB working set, {passes} more passes: {hits_moved} hits, {misses_moved} misses")
    check(hits_moved >= passes * blocks * 3 // 4,
          f"{passes} passes over {blocks} cached blocks made only {hits_moved} hits")
    check(hits_moved >= 10 * misses_moved,
          f"a working set that fits the cache: {hits_moved} hits vs {misses_moved} misses")


def read_twice_expect(handle, offset, expected, context):
    for attempt in (1, 2):
        check(handle.pread(len(expected), offset) == expected,
              f"{context}: read {attempt} at {offset} (+{len(expected)}) returned other data")


def test_coherence(h):
    handle = nbd_handle(h.weftd.uri(VDISK))
    try:
        # Small overwrites go through the OpLog; 2 MiB in one write bypasses it.
        cases = [(40 * MIB, 4 * KIB, "4 KiB"), (41 * MIB + 8 * KIB, 64 * KIB, "64 KiB"),
                 (44 * MIB, 2 * MIB, "2 MiB")]
        for index, (offset, length, label) in enumerate(cases):
            old = handle.pread(length, offset)
            read_twice_expect(handle, offset, old, f"{label}: before the overwrite")
            before = cache_counters(h)
            for generation in range(2):
                new = pattern_bytes(f"coherence-{index}-{generation}", length)
                handle.pwrite(new, offset)
                read_twice_expect(handle, offset, new, f"{label}: overwrite {generation + 1}")
                h.weftd.wait_oplog_drained(VDISK)
                read_twice_expect(handle, offset, new,
                                  f"{label}: overwrite {generation + 1}, after the drain")
            after = cache_counters(h)
            check(moved(before, after, "invalidations") > 0,
                  f"{label}: overwriting cached blocks invalidated nothing")
            # Put fio's blocks back, so that the final verification covers these too.
            handle.pwrite(old, offset)
            read_twice_expect(handle, offset, old, f"{label}: restored")
    finally:
        handle.shutdown()


def main(h):
    fill_working_set(h)
    for step in (test_larger_than_the_cache, test_working_set_that_fits, test_coherence):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)
    h.weftd.wait_oplog_drained(VDISK)
    read_verify(h, "final-verify", WORKING_SET_BYTES)


if __name__ == "__main__":
    run_test(main, description=__doc__,
             weftd_args=["--cache-size", "16M", "--cache-ssd-size", "32M"])
