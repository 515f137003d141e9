"""A three-node weft cluster on 127.0.0.1: one real ZooKeeper (zk_server.py), `weft cluster
create`, three weftd processes, and the metadata ring through failures.

0. Single node first (the harness's own weftd, no ZooKeeper): `weft meta put/get/scan/delete`
   on the local store, whose rows stay apart from the vDisk rows; `cluster show` says "local".
a. ZooKeeper + `weft cluster create` for 3 nodes + 3 weftd; `weft cluster show` and `weft status`
   list 3 live nodes from every node.
b. Metadata puts through every node, reads of each key through every other (versions agree),
   scans through every node.
c. kill -9 node 3: puts and reads through nodes 1 and 2 still succeed; once its session
   expires, `weft status` shows it down (2 of 3 live).
d. Node 3 restarts; then kill -9 node 1 and read every key through node 3 (the quorum is
   {2, 3}): the newest values.
e. Node 2 killed too (one node up): a put fails within ~10 s with 503 and a message naming the
   missing quorum; after the others restart, the row is the same from every node (old or new
   value) and a CAS on that version works.
f. Bad input on a node's RPC port (garbage, a header announcing an oversized message, a bad
   header crc, a bad message crc): the connection is closed, the node stays up and a put
   through it works.
g. The nodes restart cleanly with a longer ZooKeeper session, then ZooKeeper is killed:
   metadata reads and writes go on through the ring (Paxos needs no ZooKeeper) and `cluster
   show` reports the lost session; once the session is given up the nodes fence themselves and
   a write fails clearly ("fenced", 503) while reads work; ZooKeeper restarts on the same port
   and data, the nodes unfence, writes work again from every node.
"""

import socket
import struct
import time

from weftlib import (Cli, TestFailure, admin_request, check, check_equal, crc32c, free_port, log,
                     metadata_path, poll_until, run, run_test)
from zk_server import ZkServer

# Short sessions for phases a-f: a restarted node waits (at most this long) for the entry of its
# killed predecessor to expire before it joins.
SESSION_SHORT_MS = 4000
# Phase g: long enough that the operations right after ZooKeeper dies run well before the
# fence (a third of the session timeout without ZooKeeper).
SESSION_LONG_MS = 24000
# A put without a quorum must fail within this long (the ring gives up after ~3 s).
NO_QUORUM_FAIL_WITHIN_S = 10
ZK_ROOT = "/weft"

RPC_MAGIC = 0x43505257
RPC_HEADER_FORMAT = "<IBBHHBBIQIIIIII"
RPC_HEADER_BYTES = 48
RPC_FLAG_REQUEST = 1


class Node:
    """One cluster member: its weftd (ports chosen here), its RPC port and a CLI for it."""

    def __init__(self, harness, node_id, zk):
        self.node_id = node_id
        self.zk = zk
        self.daemon = harness.new_daemon(name=f"node{node_id}", disk_size="1G")
        self.rpc_port = free_port()
        while self.rpc_port in (self.daemon.admin_port, self.daemon.nbd_port):
            self.rpc_port = free_port()
        self.set_session(SESSION_SHORT_MS)
        self.cli = Cli(harness.args.weft, self.daemon)

    def set_session(self, session_ms):
        self.daemon.extra_args = ["--node-id", str(self.node_id),
                                  "--zookeeper", self.zk.connect_string,
                                  "--zookeeper-root", ZK_ROOT,
                                  "--zookeeper-session-timeout-ms", str(session_ms)]

    @property
    def rpc_address(self):
        return f"127.0.0.1:{self.rpc_port}"

    @property
    def admin_address(self):
        return self.daemon.admin_address

    def node_spec(self):
        return f"{self.node_id}={self.rpc_address},{self.admin_address}"

    def cluster(self):
        return self.cli.json("cluster", "show")

    def put(self, key, value, version):
        """CAS through this node with the CLI; returns the new version."""
        row = self.cli.json("meta", "put", key, value, "--version", str(version))
        check_equal(row["value"], value, f"value echoed by node {self.node_id} for {key}")
        check_equal(row["version"], version + 1, f"new version of {key} via node {self.node_id}")
        return row["version"]

    def get(self, key):
        row = self.cli.json("meta", "get", key)
        return row["value"], row["version"]

    def put_http(self, key, value, version):
        return admin_request(self.admin_address, "PUT", metadata_path(key),
                             {"value": value, "expected_version": version})


def start_all(nodes):
    """Starts the nodes' weftd one after the other (not from threads: a daemon gets SIGKILL when
    the thread that started it ends, PR_SET_PDEATHSIG). A restarted node may wait up to the
    session timeout for its killed predecessor's ZooKeeper entry to expire."""
    for node in nodes:
        node.daemon.start()


def wait_live(nodes, expected_live, timeout_s=30):
    """Until every node in `nodes` sees exactly the ids in `expected_live` as live."""
    def settled():
        for node in nodes:
            view = node.cluster()
            live = sorted(n["node_id"] for n in view["nodes"] if n["live"])
            if live != sorted(expected_live):
                return False
        return True
    poll_until(settled, timeout_s, f"nodes {[n.node_id for n in nodes]} to see {expected_live} "
               "live", interval_s=0.2)


def check_reads_agree(nodes, expected):
    """Every key of `expected` ({key: (value, version)}) read through every node."""
    for node in nodes:
        for key, value_version in sorted(expected.items()):
            check_equal(node.get(key), value_version, f"{key} read through node {node.node_id}")


def single_node_metadata(harness):
    log("0. single node: weft meta on the local store")
    cli = harness.cli
    cli.run("vdisk", "create", "vm1", "--size", "64M")
    check_equal(cli.json("meta", "put", "color", "blue")["version"], 1, "create color")
    check_equal(cli.json("meta", "put", "color", "green", "--version", "1")["version"], 2,
                "update color")
    refused = cli.run("meta", "put", "color", "red", "--version", "1", expect_rc=1)
    check("version conflict: expected 1, found 2" in refused.stderr, refused.stderr)
    cli.json("meta", "put", "a/b/c", "slashes")
    check_equal(cli.json("meta", "get", "a/b/c")["value"], "slashes", "key with slashes")
    # Only the operator's rows: the vDisk's own metadata is kept apart.
    rows = cli.json("meta", "scan")["rows"]
    check_equal(sorted(row["key"] for row in rows), ["a/b/c", "color"], "scan of every row")
    cli.run("meta", "delete", "color", "--version", "2")
    missing = cli.run("meta", "get", "color", expect_rc=1)
    check("not found" in missing.stderr, missing.stderr)
    # The rows survive a restart of weftd.
    harness.weftd.stop()
    harness.weftd.start()
    check_equal(cli.json("meta", "get", "a/b/c")["version"], 1, "a/b/c after a restart")
    view = cli.json("cluster", "show")
    check_equal(view["backend"], "local", "backend of a single node")
    status = cli.run("status").stdout
    check("Cluster:     single node (local backend)" in status, status)
    harness.weftd.stop()


def create_cluster(harness, zk, nodes):
    log("a. weft cluster create + 3 weftd")
    argv = [harness.args.weft, "cluster", "create", "--zookeeper", zk.connect_string,
            "--zookeeper-root", ZK_ROOT, "--name", "it"]
    for node in nodes:
        argv += ["--node", node.node_spec()]
    created = run(argv)
    check("Created cluster 'it'" in created.stdout, created.stdout)
    again = run(argv, check_rc=False)
    check_equal(again.returncode, 1, "exit code of a second cluster create")
    check("already exists" in again.stderr, again.stderr)

    start_all(nodes)
    wait_live(nodes, [1, 2, 3])
    for node in nodes:
        view = node.cluster()
        check_equal(view["backend"], "zookeeper", "backend")
        check_equal(view["self_node_id"], node.node_id, "self_node_id")
        check_equal(view["ring_replicas"], 3, "ring replicas")
        check_equal(view["fenced"], False, "fenced")
        addresses = {n["node_id"]: (n["rpc_address"], n["admin_address"]) for n in view["nodes"]}
        check_equal(addresses, {n.node_id: (n.rpc_address, n.admin_address) for n in nodes},
                    "node addresses")
    shown = nodes[0].cli.run("cluster", "show").stdout
    check("Nodes: 3 of 3 live" in shown, shown)
    status = nodes[1].cli.run("status").stdout
    check("Nodes:       3 of 3 live" in status, status)
    check("not fenced" in status, status)


def writes_everywhere(nodes, expected):
    log("b. puts through every node, reads through every other")
    for node in nodes:
        key = f"it/k{node.node_id}"
        node.put(key, f"v{node.node_id}.1", 0)
        expected[key] = (f"v{node.node_id}.1", 1)
    check_reads_agree(nodes, expected)
    for node in nodes:
        rows = node.cli.json("meta", "scan", "it/")["rows"]
        check_equal({r["key"]: (r["value"], r["version"]) for r in rows}, expected,
                    f"scan through node {node.node_id}")


def one_node_down(nodes, expected):
    log("c. kill -9 node 3: writes and reads through nodes 1 and 2")
    nodes[2].daemon.kill()
    up = nodes[:2]
    expected["it/k1"] = ("v1.2", nodes[1].put("it/k1", "v1.2", 1))
    expected["it/k2"] = ("v2.2", nodes[0].put("it/k2", "v2.2", 1))
    expected["it/k4"] = ("v4.1", nodes[0].put("it/k4", "v4.1", 0))
    check_reads_agree(up, expected)
    # Its ZooKeeper session times out: the others show it as down.
    wait_live(up, [1, 2])
    status = nodes[0].cli.run("status").stdout
    check("Nodes:       2 of 3 live" in status, status)
    node3_line = [line for line in status.splitlines() if line.startswith("3 ")]
    check(len(node3_line) == 1 and " NO " in node3_line[0], status)


def node_returns(nodes, expected):
    log("d. node 3 returns; kill -9 node 1; read everything through node 3")
    start_all([nodes[2]])
    wait_live(nodes, [1, 2, 3])
    nodes[0].daemon.kill()
    check_reads_agree([nodes[2]], expected)
    expected["it/k3"] = ("v3.2", nodes[2].put("it/k3", "v3.2", 1))
    check_reads_agree(nodes[1:], expected)


def no_quorum(nodes, expected):
    log("e. only node 3 up: a put fails clearly, then the row is consistent everywhere")
    nodes[1].daemon.kill()
    old_value, old_version = expected["it/k3"]
    started = time.monotonic()
    status, body = nodes[2].put_http("it/k3", "v3.lost", old_version)
    elapsed_s = time.monotonic() - started
    check_equal(status, 503, f"HTTP status of a put without quorum ({body})")
    message = body["error"]["message"]
    check("no quorum" in message or "Unavailable" in message, message)
    check(elapsed_s < NO_QUORUM_FAIL_WITHIN_S,
          f"a put without quorum took {elapsed_s:.1f} s to fail")
    cli_refused = nodes[2].cli.run("meta", "put", "it/k4", "v4.lost", "--version",
                                   str(expected["it/k4"][1]), expect_rc=1)
    check("no quorum" in cli_refused.stderr or "Unavailable" in cli_refused.stderr,
          cli_refused.stderr)
    log(f"   refused in {elapsed_s:.1f} s: {message}")

    start_all(nodes[:2])
    wait_live(nodes, [1, 2, 3])
    for key, (old_value, old_version), lost in (("it/k3", expected["it/k3"], "v3.lost"),
                                                 ("it/k4", expected["it/k4"], "v4.lost")):
        seen = {node.node_id: node.get(key) for node in nodes}
        check(len(set(seen.values())) == 1, f"{key} differs between nodes: {seen}")
        value, version = seen[1]
        check((value, version) in ((old_value, old_version), (lost, old_version + 1)),
              f"{key} is {(value, version)}: neither the old value nor the refused one")
        new_version = nodes[0].put(key, value + "+", version)
        expected[key] = (value + "+", new_version)
    check_reads_agree(nodes, expected)


def rpc_header(*, message_bytes=0, message_crc=0, flags=RPC_FLAG_REQUEST, message_type=1,
               break_header_crc=False):
    fields = [RPC_MAGIC, 1, 0, RPC_HEADER_BYTES, message_type, flags, 0, 1000, 7, message_bytes,
              0, message_crc, 0, 0, 0]
    header = struct.pack(RPC_HEADER_FORMAT, *fields)
    crc = crc32c(header)
    if break_header_crc:
        crc ^= 0x1
    fields[-1] = crc
    return struct.pack(RPC_HEADER_FORMAT, *fields)


def send_and_expect_close(address, payload, what, timeout_s=10):
    """Sends `payload` on a fresh connection; the node must close it (it may answer first)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            return  # Closed while we were still sending: that is the expected outcome.
        sock.settimeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    return
            except ConnectionResetError:
                return
            except socket.timeout:
                break
    raise TestFailure(f"the RPC port {address} kept the connection open after {what}")


def bad_rpc_input(nodes, expected):
    log("f. garbage, oversized and corrupt frames on node 2's RPC port")
    target = nodes[1]
    message = b"\x08\x01\x12\x03abc"
    # (what, bytes sent, the reason the node must log for closing the connection)
    cases = [
        ("garbage bytes", b"GARBAGE!" * 512, "bad magic"),
        ("a header announcing a 4 GiB message", rpc_header(message_bytes=0xFFFFFFFF),
         "message of 4294967295 bytes exceeds the limit"),
        ("a header with a bad crc", rpc_header(message_bytes=len(message),
                                               message_crc=crc32c(message),
                                               break_header_crc=True) + message,
         "header crc32c mismatch"),
        ("a message with a bad crc", rpc_header(message_bytes=len(message),
                                                message_crc=crc32c(message) ^ 1) + message,
         "message crc32c mismatch"),
        ("a header with unknown flags", rpc_header(flags=0x80), "unknown flag bits 0x80"),
    ]
    for what, payload, reason in cases:
        send_and_expect_close(target.rpc_address, payload, what)
        target.daemon.check_alive(f"{what} on its RPC port")
        # The connection was closed for this frame's fault, not for another one (say a header
        # crc this test computed wrong).
        poll_until(lambda: reason in target.daemon.log_tail(), 10,
                   f"node 2 to log '{reason}' after {what}")
    # Many half-open connections at once, then gone.
    sockets = [socket.create_connection(("127.0.0.1", target.rpc_port), timeout=5)
               for _ in range(20)]
    for sock in sockets:
        sock.sendall(rpc_header(message_bytes=100)[:30])
        sock.close()
    target.daemon.check_alive("20 truncated headers")
    key = "it/k2"
    value, version = expected[key]
    expected[key] = (value + "!", target.put(key, value + "!", version))
    check_reads_agree(nodes, expected)


def zookeeper_outage(zk, nodes, expected):
    log("g. ZooKeeper disappears and comes back")
    for node in nodes:
        node.daemon.stop()
        node.set_session(SESSION_LONG_MS)
    start_all(nodes)
    wait_live(nodes, [1, 2, 3])

    zk.kill()
    killed_at = time.monotonic()
    # Well within the fence delay (a third of SESSION_LONG_MS): the ring needs no ZooKeeper.
    value, version = expected["it/k1"]
    expected["it/k1"] = ("zk-down", nodes[0].put("it/k1", "zk-down", version))
    check_reads_agree(nodes, {"it/k1": expected["it/k1"]})
    view = nodes[1].cluster()
    elapsed_s = time.monotonic() - killed_at
    if elapsed_s < SESSION_LONG_MS / 3000 - 1:
        check_equal(view["fenced"], False, f"fenced {elapsed_s:.1f} s after ZooKeeper died")
        check(view["session"] != "connected", f"session state without ZooKeeper: {view}")
    shown = nodes[1].cli.run("cluster", "show").stdout
    check("session " in shown, shown)
    log(f"   {elapsed_s:.1f} s without ZooKeeper: session {view['session']}, "
        f"fenced {view['fenced']}")

    poll_until(lambda: all(node.cluster()["fenced"] for node in nodes), SESSION_LONG_MS / 1000,
               "every node to fence itself without ZooKeeper", interval_s=0.5)
    status, body = nodes[0].put_http("it/k1", "fenced", expected["it/k1"][1])
    check_equal(status, 503, f"HTTP status of a put through a fenced node ({body})")
    check("fenced" in body["error"]["message"], body["error"]["message"])
    refused = nodes[2].cli.run("meta", "put", "it/fenced", "x", expect_rc=1)
    check("fenced" in refused.stderr, refused.stderr)
    check_reads_agree(nodes, expected)  # Reads need no ownership.

    zk.restart()
    poll_until(lambda: not any(node.cluster()["fenced"] for node in nodes), 60,
               "every node to unfence once ZooKeeper is back", interval_s=0.5)
    wait_live(nodes, [1, 2, 3], timeout_s=60)
    for node in nodes:
        key = f"it/after-zk-{node.node_id}"
        expected[key] = ("back", node.put(key, "back", 0))
    check_reads_agree(nodes, expected)


def main(harness):
    single_node_metadata(harness)
    with ZkServer(base_dir=harness.work_dir) as zk:
        nodes = [Node(harness, node_id, zk) for node_id in (1, 2, 3)]
        expected = {}
        create_cluster(harness, zk, nodes)
        writes_everywhere(nodes, expected)
        one_node_down(nodes, expected)
        node_returns(nodes, expected)
        no_quorum(nodes, expected)
        bad_rpc_input(nodes, expected)
        zookeeper_outage(zk, nodes, expected)
        for node in nodes:
            node.daemon.stop()


if __name__ == "__main__":
    run_test(main, description=__doc__)
