"""The replicated data path (RF2) with real processes: ZooKeeper, `weft cluster create` for 3
nodes, a container with --rf 2, vDisks owned by the node they were created through.

1. Failover under fio: a 256 MiB vDisk on node 1; fio (nbd engine, randwrite 4k/64k, crc32c
   headers, verify state saved) writes through node 1 and node 3 is killed with kill -9 when
   about half is written: fio completes without an error (writes go to new replica sets). The
   whole disk is copied out of node 1. Node 3 returns (with one node down RF2 keeps only one copy
   of what was written meanwhile, and the metadata ring needs 2 of its 3 replicas: a second
   failure needs the first node back); then node 1, the owner, is killed. Node 2, its OpLog
   peer, takes the vDisk over (takeover time printed): fio --verify_only of every write passes
   through node 2's NBD port and qemu-img compare finds node 2's disk identical to the copy.
   A write through node 2 works; node 1 returns: it answers 404 for the vDisk and refuses its
   NBD export, and node 2 still reads what it wrote.
2. A hung owner (no split brain): a vDisk on node 3; blocks written through it; node 3 is paused
   with SIGSTOP (a write is queued on its NBD connection meanwhile) until its ZooKeeper session
   expires and a successor takes over; blocks are written through the successor; node 3 is
   resumed: the queued write and a new one on the old connection both fail, node 3 gives the
   vDisk up (404, NBD refused) and every block reads back as the successor acknowledged it.
3. A corrupt replica: a unique 4 KiB block is written through the owner and drained from the
   OpLog; its bytes are found in the owner's disk image file and flipped; a read through NBD
   returns the good block, replication.replica_repairs then counts the repair (done after the
   answer), a second read is good too and the block is on the owner's disk again.
"""

import os
import time

from weftlib import (KIB, MIB, Cluster, TestFailure, check, check_equal, fio_job_report, log,
                     nbd_handle, nbd_refused, pattern_bytes, poll_until, run, run_test, spawn,
                     wait_process)
from zk_server import ZkServer

# Short sessions: an owner's death is noticed SESSION_MS after its kill (ZooKeeper's tickTime is
# 500 ms, so 4 s is within its negotiable range).
SESSION_MS = 4000
# A modest cache: several nodes share the machine (reads fill it, writes do not).
NODE_ARGS = ["--cache-size", "256M"]
CONTAINER = "rf2"

FIO_VDISK = "fio"
FIO_SIZE_BYTES = 256 * MIB
# A bound on the write phase; it usually ends sooner, once every block is written.
FIO_RUNTIME_S = 20
# Hang guards, not timing assertions.
TAKEOVER_TIMEOUT_S = 60
GIVE_UP_TIMEOUT_S = 30
OLD_OWNER_ANSWER_TIMEOUT_S = 30
REPAIR_TIMEOUT_S = 30

SPLIT_VDISK = "split"
REPAIR_VDISK = "repair"
BLOCK_BYTES = 4 * KIB


def fio_argv(uri, output_path, *extra):
    """The write phase and its verification share every option that decides where and what fio
    writes (name, seed, size, block sizes), so that --verify_only replays the same sequence."""
    return ["fio", f"--name={FIO_VDISK}", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
            "--bssplit=4k/70:64k/30", "--iodepth=8", f"--size={FIO_SIZE_BYTES}",
            "--verify=crc32c", "--verify_fatal=1", "--randseed=2027", "--output-format=json",
            f"--output={output_path}", *extra]


def bytes_written(node, vdisk):
    return node.stats(vdisk).get("io", {}).get("bytes_written", 0)


def write_phase_with_a_node_killed(h, cluster):
    """fio writes through node 1; node 3 is killed halfway. Returns fio's write report."""
    n1, n3 = cluster.node(1), cluster.node(3)
    output = h.path("fio-write.json")
    fio = spawn(fio_argv(n1.uri(FIO_VDISK), output, f"--runtime={FIO_RUNTIME_S}",
                         "--do_verify=0", "--verify_state_save=1"),
                cwd=h.work_dir, output_path=h.path("fio-write.out"))
    started = time.monotonic()

    def halfway():
        check(fio.poll() is None, "fio ended before node 3 was killed (see fio-write.out)")
        return (bytes_written(n1, FIO_VDISK) >= FIO_SIZE_BYTES // 2 or
                time.monotonic() - started >= FIO_RUNTIME_S / 2)
    poll_until(halfway, FIO_RUNTIME_S * 3, "fio to write half of the vDisk", interval_s=0.1)
    written_at_kill = bytes_written(n1, FIO_VDISK)
    n3.daemon.kill()
    log(f"   node 3 killed after {time.monotonic() - started:.1f} s, {written_at_kill} bytes "
        "written")
    code = wait_process(fio, timeout_s=FIO_RUNTIME_S * 10)
    if code != 0:
        running = [node.node_id for node in cluster.running()]
        with open(h.path("fio-write.out"), errors="replace") as file:
            raise TestFailure(f"fio's write phase failed with exit code {code} (nodes still "
                              f"running: {running}):\n{file.read()[-4000:]}")
    job = fio_job_report(output, "write phase")
    check(job["write"]["io_bytes"] > written_at_kill,
          f"fio wrote nothing after node 3 was killed: {job['write']['io_bytes']} bytes in all")
    log(f"   fio write phase: {job['write']['total_ios']} writes, {job['write']['io_bytes']} "
        f"bytes, {job['write']['iops']:.0f} IOPS, {job['elapsed']} s, node 3 down from "
        f"{written_at_kill} bytes on")
    return job


def failover_under_fio(h, cluster):
    log("1. fio through node 1, node 3 killed, then node 1 killed: node 2 takes over")
    n1, n2, n3 = cluster.node(1), cluster.node(2), cluster.node(3)
    n1.cli.create_vdisk(FIO_VDISK, "256M", container=CONTAINER)
    replication = n1.replication(FIO_VDISK)
    check_equal(replication["owner_node"], 1, "owner of a vDisk created through node 1")
    check_equal(replication["oplog_peers_count"], 1, "OpLog peers of an RF2 vDisk")
    for node in (n2, n3):
        status, body = node.vdisk(FIO_VDISK)
        check_equal(status, 404, f"GET {FIO_VDISK} on node {node.node_id}, not its owner ({body})")
        check(nbd_refused(node.uri(FIO_VDISK)), f"node {node.node_id} serves {FIO_VDISK} over "
              "NBD without owning it")

    job = write_phase_with_a_node_killed(h, cluster)
    replication = n1.replication(FIO_VDISK)
    log(f"   node 1 with node 3 down: {replication}")
    before_path = h.path("before.raw")
    run(["nbdcopy", n1.uri(FIO_VDISK), before_path])

    n3.daemon.start()
    cluster.wait_live([1, 2, 3])
    check_equal(n3.vdisk(FIO_VDISK)[0], 404, f"GET {FIO_VDISK} on node 3 after its return")
    epoch = n1.replication(FIO_VDISK)["owner_epoch"]
    n1.daemon.kill()
    owner, waited_s = cluster.wait_owner(FIO_VDISK, [n2, n3], TAKEOVER_TIMEOUT_S)
    log(f"   takeover: node {owner.node_id} serves {FIO_VDISK} {waited_s:.1f} s after the kill "
        f"of node 1 (session timeout {SESSION_MS / 1000:.0f} s)")
    check_equal(owner.node_id, 2, "the successor (node 1's only OpLog peer since node 3 died)")
    replication = owner.replication(FIO_VDISK)
    check_equal(replication["owner_node"], 2, "owner_node after the takeover")
    check(replication["owner_epoch"] > epoch,
          f"owner_epoch after the takeover: {replication['owner_epoch']}, before {epoch}")

    output = h.path("fio-verify.json")
    # --verify_state_save=0: a verify run must not replace the state the write phase saved.
    run(fio_argv(owner.uri(FIO_VDISK), output, "--verify_only", "--verify_state_load=1",
                 "--verify_state_save=0", f"--number_ios={job['write']['total_ios']}"),
        cwd=h.work_dir)
    verified = fio_job_report(output, "verify on the new owner")
    check_equal(verified["read"]["io_bytes"], job["write"]["io_bytes"],
                "bytes fio verified through node 2")
    log(f"   fio verified {verified['read']['io_bytes']} bytes through node 2 at "
        f"{verified['read']['iops']:.0f} IOPS")
    compared = run(["qemu-img", "compare", "-f", "raw", "-F", "raw", before_path,
                    owner.uri(FIO_VDISK)], check_rc=False)
    check(compared.returncode == 0, "the disk served by node 2 differs from the copy taken "
          f"from node 1:\n{compared.stdout}{compared.stderr}")
    os.unlink(before_path)
    log(f"   node 2 after the verify: {owner.replication(FIO_VDISK)}")
    # The new owner takes writes (RF2 on nodes 2 and 3).
    after = pattern_bytes("after-takeover", 64 * KIB)
    handle = nbd_handle(owner.uri(FIO_VDISK))
    handle.pwrite(after, 0)
    handle.flush()

    n1.daemon.start()
    cluster.wait_live([1, 2, 3])
    check_equal(n1.vdisk(FIO_VDISK)[0], 404, f"GET {FIO_VDISK} on node 1 after its return")
    check(nbd_refused(n1.uri(FIO_VDISK)), f"node 1 serves {FIO_VDISK} again after the takeover")
    check_equal(cluster.owners(FIO_VDISK), [2], f"owners of {FIO_VDISK} with node 1 back")
    check(handle.pread(len(after), 0) == after,
          "a write through node 2 after the takeover reads back wrong once node 1 returned")
    handle.shutdown()


def await_outcomes(handle, cookies, timeout_s):
    """Runs the handle until every cookie completed or the connection died; returns
    {cookie: "acknowledged" | "failed: ..." | "pending"}."""
    import nbd
    outcomes = {}
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < len(cookies) and time.monotonic() < deadline:
        for cookie in cookies:
            if cookie in outcomes:
                continue
            try:
                if handle.aio_command_completed(cookie):
                    outcomes[cookie] = "acknowledged"
            except nbd.Error as error:
                outcomes[cookie] = f"failed: {error}"
        if len(outcomes) < len(cookies):
            try:
                handle.poll(200)
            except nbd.Error as error:  # The connection is dead: nothing more will complete.
                for cookie in cookies:
                    outcomes.setdefault(cookie, f"failed: {error}")
    for cookie in cookies:
        outcomes.setdefault(cookie, "pending")
    return outcomes


def hung_owner(h, cluster):
    log("2. node 3, the owner, paused past its session: a successor takes over, no split brain")
    n3 = cluster.node(3)
    n3.cli.create_vdisk(SPLIT_VDISK, "64M", container=CONTAINER)
    check_equal(cluster.owners(SPLIT_VDISK), [3], f"owners of {SPLIT_VDISK}")
    epoch = n3.replication(SPLIT_VDISK)["owner_epoch"]
    offsets = {name: index * 64 * KIB for index, name in enumerate("ABCD")}
    data = {name: pattern_bytes(f"split-{name}", BLOCK_BYTES) for name in
            ("A", "B1", "B2", "C", "bad-queued", "bad-new")}
    old = nbd_handle(n3.uri(SPLIT_VDISK))
    old.pwrite(data["A"], offsets["A"])
    old.pwrite(data["B1"], offsets["B"])
    old.flush()

    n3.pause()
    # Waits in the paused node's socket: the first thing it may handle when it runs again.
    queued = old.aio_pwrite(data["bad-queued"], offsets["B"])
    successor, waited_s = cluster.wait_owner(SPLIT_VDISK, [cluster.node(1), cluster.node(2)],
                                             TAKEOVER_TIMEOUT_S)
    log(f"   takeover: node {successor.node_id} serves {SPLIT_VDISK} {waited_s:.1f} s after "
        f"node 3 was paused")
    check(successor.replication(SPLIT_VDISK)["owner_epoch"] > epoch, "owner_epoch after takeover")
    new = nbd_handle(successor.uri(SPLIT_VDISK))
    check(new.pread(BLOCK_BYTES, offsets["A"]) == data["A"], "block A through the successor")
    check(new.pread(BLOCK_BYTES, offsets["B"]) == data["B1"], "block B through the successor")
    new.pwrite(data["B2"], offsets["B"])
    new.pwrite(data["C"], offsets["C"])
    new.flush()

    n3.resume()
    fresh = old.aio_pwrite(data["bad-new"], offsets["D"])
    outcomes = await_outcomes(old, [queued, fresh], OLD_OWNER_ANSWER_TIMEOUT_S)
    log(f"   the old owner's writes: queued while paused {outcomes[queued]}; sent after the "
        f"resume {outcomes[fresh]}")
    for cookie, what in ((queued, "queued while it was paused"), (fresh, "sent after it resumed")):
        check(outcomes[cookie].startswith("failed"),
              f"node 3's write {what} was {outcomes[cookie]}, after node {successor.node_id} "
              "took the vDisk over (it must fail)")
    del old  # Closes the connection (libnbd 1.14 has no close()).
    n3.daemon.check_alive("its resume")

    expected = {"A": data["A"], "B": data["B2"], "C": data["C"], "D": bytes(BLOCK_BYTES)}
    reader = nbd_handle(successor.uri(SPLIT_VDISK))
    for name, block in expected.items():
        for handle, what in ((new, "the successor's connection"), (reader, "a new connection")):
            check(handle.pread(BLOCK_BYTES, offsets[name]) == block,
                  f"block {name} read through {what} to node {successor.node_id} is not what "
                  "the successor acknowledged (or zeros for a write that failed)")
    new.shutdown()
    reader.shutdown()

    poll_until(lambda: n3.vdisk(SPLIT_VDISK)[0] == 404, GIVE_UP_TIMEOUT_S,
               f"node 3 to give {SPLIT_VDISK} up (it still answers 200 for it)", interval_s=0.2)
    check(nbd_refused(n3.uri(SPLIT_VDISK)), f"node 3 still serves {SPLIT_VDISK} over NBD")
    check_equal(cluster.owners(SPLIT_VDISK), [successor.node_id], f"owners of {SPLIT_VDISK}")
    cluster.wait_live([1, 2, 3])


def find_all(path, needle):
    """Offsets of every occurrence of `needle` in the (sparse) file at `path`."""
    found = []
    chunk_bytes = 16 * MIB
    with open(path, "rb") as file:
        fd = file.fileno()
        end = os.fstat(fd).st_size
        position = 0
        while position < end:
            try:
                data_start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left.
                break
            data_end = os.lseek(fd, data_start, os.SEEK_HOLE)
            offset = data_start
            while offset < data_end:
                file.seek(offset)
                chunk = file.read(min(chunk_bytes + len(needle) - 1, data_end - offset))
                index = chunk.find(needle)
                while index != -1:
                    if index < chunk_bytes:
                        found.append(offset + index)
                    index = chunk.find(needle, index + 1)
                offset += chunk_bytes
            position = data_end
    return sorted(set(found))


def corrupt_copies(path, offsets, length_bytes):
    """Flips `length_bytes` bytes in the middle of each copy (buffered write plus fsync: weftd's
    O_DIRECT reads see written-back pages)."""
    fd = os.open(path, os.O_RDWR)
    try:
        for offset in offsets:
            spot = offset + 1000
            original = os.pread(fd, length_bytes, spot)
            os.pwrite(fd, bytes(b ^ 0xFF for b in original), spot)
        os.fsync(fd)
    finally:
        os.close(fd)


def corrupt_replica(h, cluster):
    log("3. a corrupt replica on the owner: reads stay good and the replica is repaired")
    n1 = cluster.node(1)
    n1.cli.create_vdisk(REPAIR_VDISK, "64M", container=CONTAINER)
    block = pattern_bytes(f"repair-{time.time_ns()}", BLOCK_BYTES)
    offset = 5 * MIB + 12 * KIB
    handle = nbd_handle(n1.uri(REPAIR_VDISK))
    handle.pwrite(block, offset)
    handle.flush()
    handle.shutdown()
    def drained():
        oplog = n1.stats(REPAIR_VDISK).get("oplog", {})
        check("records_undrained" in oplog, f"no oplog.records_undrained in the stats: {oplog}")
        return oplog["records_undrained"] == 0
    poll_until(drained, 60, f"the OpLog of {REPAIR_VDISK} to drain", interval_s=0.2)
    copies = find_all(n1.daemon.disk_path, block)
    check(len(copies) >= 1, f"the written block is nowhere in node 1's disk file "
          f"{n1.daemon.disk_path}")
    corrupt_copies(n1.daemon.disk_path, copies, 64)
    check_equal(find_all(n1.daemon.disk_path, block), [], "copies left after the corruption")
    log(f"   flipped 64 bytes in each of {len(copies)} copies on node 1's disk at {copies}")

    def read_back(attempt):
        reader = nbd_handle(n1.uri(REPAIR_VDISK))
        check(reader.pread(BLOCK_BYTES, offset) == block,
              f"the {attempt} read of the corrupted block returned other bytes")
        reader.shutdown()
    read_back("first")
    # The read is answered from the good replica; the bad one is rewritten after the answer.
    poll_until(lambda: n1.replication(REPAIR_VDISK)["replica_repairs"] >= 1, REPAIR_TIMEOUT_S,
               "replication.replica_repairs to count the repair of the corrupt block",
               interval_s=0.1)
    read_back("second")
    log(f"   node 1 after the reads: {n1.replication(REPAIR_VDISK)}")
    repaired = find_all(n1.daemon.disk_path, block)
    check(len(repaired) >= 1, "the repaired block is not on node 1's disk")
    log(f"   repaired copy on node 1's disk at {repaired}")


def main(h):
    h.weftd.stop()  # The harness's single node is not part of this test.
    with ZkServer(base_dir=h.work_dir) as zk:
        cluster = Cluster(h, zk, 3, session_ms=SESSION_MS,
                          extra_args=NODE_ARGS)
        cluster.create()
        cluster.node(1).cli.run("container", "create", CONTAINER, "--rf", "2")
        failover_under_fio(h, cluster)
        hung_owner(h, cluster)
        corrupt_replica(h, cluster)
        # Within the ZooKeeper block: a node stops cleanly while its ensemble runs.
        cluster.stop_all()


if __name__ == "__main__":
    run_test(main, description=__doc__)
