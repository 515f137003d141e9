"""The OpLog loses no acknowledged write when weftd dies, and replays what it had not drained.

1. Crash: fio writes random 4 KiB blocks over a 256 MiB region in bursts (iodepth 16, a pause
   every burst so that the OpLog absorbs a burst and drains between them), with crc32c headers
   and a saved verify state. weftd is killed with SIGKILL at a moment when the admin API shows
   undrained data in the OpLog (stats.oplog.index_bytes > 0) in the middle of a burst, and
   restarted on the same data dir: `weft --json vdisk show` must report
   stats.oplog.records_replayed > 0, and fio --verify_only must find every acknowledged block,
   once right after the start and again once the OpLog has drained what it replayed.
2. Clean restart: the same bursts on another vDisk, run to completion, then SIGTERM (exit code
   0) and a start: every block verifies, before and after the drain, and the OpLog reports no
   failure.
"""

import json
import os
import time

from weftlib import KIB, MIB, check, check_equal, fio_job_report, log, run, run_test, spawn
from weftlib import wait_process

REGION_BYTES = 256 * MIB
BLOCK_BYTES = 4 * KIB
IODEPTH = 16
# A burst of 4 MiB, then a pause: long enough for the drain to make progress, short enough that
# the run keeps the OpLog busy.
BURST_BLOCKS = 1024
PAUSE_US = 200_000
# The kill waits for this many writes (in the middle of the third burst: after the drain has
# had pauses to work in) and for undrained data in the OpLog; both are checked, neither is a
# time.
WRITES_BEFORE_KILL = 2 * BURST_BLOCKS + BURST_BLOCKS // 2
UNDRAINED_BYTES_AT_KILL_MIN = 64 * KIB
# Hang guard for the write phase to reach the kill condition.
KILL_CONDITION_TIMEOUT_S = 60
CLEAN_REGION_BYTES = 32 * MIB


def fio_argv(h, vdisk, region_bytes, output_path, *extra):
    """The write job and its verification share every option that decides where and what fio
    writes (name, seed, size, block size), so that --verify_only replays the same sequence."""
    return ["fio", f"--name={vdisk}", "--ioengine=nbd", f"--uri={h.weftd.uri(vdisk)}",
            "--rw=randwrite", f"--bs={BLOCK_BYTES}", f"--iodepth={IODEPTH}",
            f"--size={region_bytes}", "--verify=crc32c", "--verify_fatal=1", "--randseed=1717",
            "--output-format=json", f"--output={output_path}", *extra]


def burst_options():
    return [f"--thinktime={PAUSE_US}", f"--thinktime_blocks={BURST_BLOCKS}",
            "--do_verify=0", "--verify_state_save=1"]


def verify(h, vdisk, region_bytes, context, acknowledged_writes):
    """fio --verify_only of the first `acknowledged_writes` writes of the write phase (with its
    saved state); returns the bytes verified.

    fio's saved state alone is not enough after a kill: the writes that the broken connection
    failed are not in its list of writes in flight, so fio would verify them too. weftd
    acknowledges these writes in the order they arrive (all go to the OpLog, whose batches
    complete in order), so the acknowledged writes are the first ones fio issued, as many as
    its report counts."""
    output = h.path(f"{vdisk}-verify.json")
    # --verify_state_save=0: a verify run must not replace the state the write phase saved.
    run(fio_argv(h, vdisk, region_bytes, output, "--verify_only", "--verify_state_load=1",
                 "--verify_state_save=0", f"--number_ios={acknowledged_writes}"),
        cwd=h.work_dir)
    job = fio_job_report(output, context)
    verified = job["read"]["io_bytes"]
    log(f"{context}: fio verified {verified} bytes")
    check_equal(verified, acknowledged_writes * BLOCK_BYTES, f"{context}: bytes verified")
    return verified


def oplog_of(h, vdisk):
    """stats.oplog from `weft --json vdisk show` (the CLI's pass-through of the admin API)."""
    stats = h.cli.json("vdisk", "show", vdisk).get("stats", {})
    check("oplog" in stats, f"vdisk {vdisk} has no oplog counters: {stats}")
    return stats["oplog"]


def wait_for_kill_moment(h, vdisk, fio):
    """Polls the admin API until fio has written WRITES_BEFORE_KILL blocks, is in the middle of
    a burst (the write count grew since the last poll) and the OpLog holds undrained data;
    returns those counters. (In a pause, the idle drain could empty the OpLog before the kill
    lands.)"""
    deadline = time.monotonic() + KILL_CONDITION_TIMEOUT_S
    writes_before = None
    while True:
        check(fio.poll() is None, f"fio exited (code {fio.returncode}) before the OpLog held "
              "undrained data after enough writes: make the bursts longer or the pauses shorter")
        stats = h.weftd.vdisk_stats(vdisk)
        writes = stats.get("io", {}).get("writes", 0)
        undrained_bytes = stats.get("oplog", {}).get("index_bytes", 0)
        if (writes >= WRITES_BEFORE_KILL and writes_before is not None and writes > writes_before
                and undrained_bytes >= UNDRAINED_BYTES_AT_KILL_MIN):
            return stats
        writes_before = writes
        check(time.monotonic() < deadline, f"no undrained OpLog data after "
              f"{KILL_CONDITION_TIMEOUT_S} s of bursts; last counters: {stats}")
        time.sleep(0.005)


def test_kill_with_undrained_oplog(h):
    vdisk = "burst"
    h.cli.create_vdisk(vdisk, f"{REGION_BYTES // MIB}M")
    write_json = h.path(f"{vdisk}-write.json")
    fio = spawn(fio_argv(h, vdisk, REGION_BYTES, write_json, *burst_options()),
                cwd=h.work_dir, output_path=h.path(f"{vdisk}-write.out"))
    stats = wait_for_kill_moment(h, vdisk, fio)
    h.weftd.kill()
    log(f"killed with {stats['oplog']['index_bytes']} undrained bytes in the OpLog after "
        f"{stats['io']['writes']} writes")
    # What verify() relies on: every write went to the OpLog.
    characterizer = stats.get("characterizer", {})
    check(characterizer.get("writes_oplog", 0) == stats["io"]["writes"],
          f"some writes bypassed the OpLog before the kill: {stats}")
    code = wait_process(fio)
    log(f"fio write phase exited with code {code} after the kill")
    with open(write_json) as file:
        written_bytes = json.load(file)["jobs"][0]["write"]["io_bytes"]
    acknowledged_writes = written_bytes // BLOCK_BYTES
    check(acknowledged_writes > 0, "fio reports no acknowledged write before the kill")
    state = os.path.join(h.work_dir, f"local-{vdisk}-0-verify.state")
    check(os.path.exists(state), f"fio saved no verify state ({state})")

    h.weftd.start()
    oplog = oplog_of(h, vdisk)
    log(f"after the restart: {oplog}")
    check(oplog.get("records_replayed", 0) > 0,
          f"weftd was killed with {stats['oplog']['index_bytes']} undrained OpLog bytes but "
          f"replayed no record at start: {oplog}")
    check_equal(oplog.get("failed"), 0, "stats.oplog.failed after the restart")
    verify(h, vdisk, REGION_BYTES, "verify after the crash", acknowledged_writes)
    h.weftd.wait_oplog_drained(vdisk)
    verify(h, vdisk, REGION_BYTES, "verify after the replayed records drained",
           acknowledged_writes)


def test_clean_restart(h):
    vdisk = "clean"
    h.cli.create_vdisk(vdisk, f"{CLEAN_REGION_BYTES // MIB}M")
    write_json = h.path(f"{vdisk}-write.json")
    run(fio_argv(h, vdisk, CLEAN_REGION_BYTES, write_json, *burst_options()), cwd=h.work_dir)
    job = fio_job_report(write_json, "clean write phase")
    check_equal(job["write"]["io_bytes"], CLEAN_REGION_BYTES, "bytes written before SIGTERM")
    log(f"before SIGTERM: {h.weftd.vdisk_stats(vdisk).get('oplog')}")
    h.weftd.stop()
    h.weftd.start()
    oplog = oplog_of(h, vdisk)
    log(f"after the clean restart: {oplog}")
    check_equal(oplog.get("failed"), 0, "stats.oplog.failed after the clean restart")
    writes = CLEAN_REGION_BYTES // BLOCK_BYTES
    verify(h, vdisk, CLEAN_REGION_BYTES, "verify after the clean restart", writes)
    h.weftd.wait_oplog_drained(vdisk)
    verify(h, vdisk, CLEAN_REGION_BYTES, "verify after the clean restart's drain", writes)


def main(h):
    for step in (test_kill_with_undrained_oplog, test_clean_restart):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)


if __name__ == "__main__":
    run_test(main, description=__doc__)
