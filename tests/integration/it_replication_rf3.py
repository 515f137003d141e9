"""RF3 on five nodes with real processes: ZooKeeper, `weft cluster create --redundancy-factor 3`
(5 metadata ring replicas: a quorum survives two nodes down), a container with --rf 3 and a
vDisk created through node 1, its owner.

1. Blocks written through node 1 with qemu-io (small writes through the OpLog, a 4 MiB write
   that bypasses it); node 1 reports 2 OpLog peers.
2. Nodes 2 and 3 are killed with kill -9: more writes through node 1 succeed (new replica sets
   on the 3 live nodes), into new and existing egroups, the OpLog drains into the egroups, and
   everything written reads back, old and new.
3. Nodes 2 and 3 return (they answer 404 for the vDisk: they never serve it); node 1, the owner,
   is killed: a live OpLog peer takes over (takeover time printed), every block reads back
   through the new owner's NBD port, and writes through it work.
"""

import time

from weftlib import MIB, Cluster, check, check_equal, log, poll_until, run, run_test
from zk_server import ZkServer

SESSION_MS = 4000
# A modest cache: several nodes share the machine (reads fill it, writes do not).
NODE_ARGS = ["--cache-size", "256M"]
CONTAINER = "rf3"
VDISK = "rf3"
TAKEOVER_TIMEOUT_S = 60
DRAIN_TIMEOUT_S = 60

# (offset, length, pattern byte): written in this order, each phase adding its own.
BEFORE = [(0, 4096, 0x11), (1 * MIB + 4096, 65536, 0x12), (8 * MIB, 4 * MIB, 0x13)]
# Into existing egroups (through the OpLog, and a 2 MiB write that bypasses it) and a new one.
TWO_DOWN = [(4096, 4096, 0x21), (1 * MIB + 8192, 4096, 0x22), (16 * MIB, 4 * MIB, 0x23),
            (8 * MIB + 512 * 1024, 4096, 0x24), (9 * MIB, 2 * MIB, 0x25)]
AFTER_TAKEOVER = [(32 * MIB, 4096, 0x31), (0, 4096, 0x32)]


def qemu_io(uri, commands):
    argv = ["qemu-io", "-f", "raw"]
    for command in commands:
        argv += ["-c", command]
    argv.append(uri)
    result = run(argv)
    output = result.stdout + result.stderr
    # qemu-io exits 0 after some failed commands, but it always prints "failed".
    check("failed" not in output.lower(), f"qemu-io reported a failure:\n{output}")


def write(uri, writes):
    qemu_io(uri, [f"write -P {pattern:#x} {offset} {length}" for offset, length, pattern in
                  writes])


def expected_reads(writes):
    """Read commands for what `writes` left, later writes covering earlier ones (the pieces of
    an earlier write that a later one overwrote are not read for the earlier pattern)."""
    commands = []
    for index, (offset, length, pattern) in enumerate(writes):
        pieces = [(offset, offset + length)]
        for later_offset, later_length, _ in writes[index + 1:]:
            later_end = later_offset + later_length
            next_pieces = []
            for start, end in pieces:
                if later_end <= start or later_offset >= end:
                    next_pieces.append((start, end))
                    continue
                if start < later_offset:
                    next_pieces.append((start, later_offset))
                if later_end < end:
                    next_pieces.append((later_end, end))
            pieces = next_pieces
        commands += [f"read -P {pattern:#x} {start} {end - start}" for start, end in pieces]
    return commands


def main(h):
    h.weftd.stop()  # The harness's single node is not part of this test.
    with ZkServer(base_dir=h.work_dir) as zk:
        cluster = Cluster(h, zk, 5, session_ms=SESSION_MS, redundancy_factor=3,
                          extra_args=NODE_ARGS)
        cluster.create()
        n1 = cluster.node(1)
        n1.cli.run("container", "create", CONTAINER, "--rf", "3")
        n1.cli.create_vdisk(VDISK, "64M", container=CONTAINER)

        log("1. writes through node 1 with every node up")
        write(n1.uri(VDISK), BEFORE)
        replication = n1.replication(VDISK)
        check_equal(replication["owner_node"], 1, "owner of a vDisk created through node 1")
        check_equal(replication["oplog_peers_count"], 2, "OpLog peers of an RF3 vDisk")
        qemu_io(n1.uri(VDISK), expected_reads(BEFORE))

        log("2. nodes 2 and 3 killed: writes and reads through node 1 go on")
        cluster.node(2).daemon.kill()
        cluster.node(3).daemon.kill()
        written = BEFORE + TWO_DOWN
        started = time.monotonic()
        write(n1.uri(VDISK), TWO_DOWN)
        elapsed_s = time.monotonic() - started
        log(f"   {len(TWO_DOWN)} writes with two nodes down took {elapsed_s:.1f} s")
        # The drain writes the OpLog's records into egroups whose replicas may be on the dead
        # nodes: they are replaced (or the drain never ends).
        poll_until(lambda: n1.stats(VDISK)["oplog"]["records_undrained"] == 0, DRAIN_TIMEOUT_S,
                   f"node 1 to drain the OpLog of {VDISK} with two nodes down", interval_s=0.2)
        qemu_io(n1.uri(VDISK), expected_reads(written))
        log(f"   node 1 with nodes 2 and 3 down: {n1.replication(VDISK)}")

        log("3. nodes 2 and 3 return, node 1 killed: a peer takes over")
        cluster.start([2, 3])
        cluster.wait_live([1, 2, 3, 4, 5])
        for node_id in (2, 3):
            status, body = cluster.node(node_id).vdisk(VDISK)
            check_equal(status, 404, f"GET {VDISK} on node {node_id} after its return ({body})")
        epoch = n1.replication(VDISK)["owner_epoch"]
        n1.daemon.kill()
        candidates = [cluster.node(i) for i in (2, 3, 4, 5)]
        owner, waited_s = cluster.wait_owner(VDISK, candidates, TAKEOVER_TIMEOUT_S)
        log(f"   takeover: node {owner.node_id} serves {VDISK} {waited_s:.1f} s after the kill of "
            f"node 1 (session timeout {SESSION_MS / 1000:.0f} s)")
        replication = owner.replication(VDISK)
        check_equal(replication["owner_node"], owner.node_id, "owner_node after the takeover")
        check(replication["owner_epoch"] > epoch,
              f"owner_epoch after the takeover: {replication['owner_epoch']}, before {epoch}")
        qemu_io(owner.uri(VDISK), expected_reads(written))
        written += AFTER_TAKEOVER
        write(owner.uri(VDISK), AFTER_TAKEOVER)
        qemu_io(owner.uri(VDISK), expected_reads(written))
        log(f"   node {owner.node_id} after the reads: {owner.replication(VDISK)}")
        cluster.stop_all()


if __name__ == "__main__":
    run_test(main, description=__doc__)
