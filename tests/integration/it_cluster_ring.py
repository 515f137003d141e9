"""Metadata ring changes with real processes: ZooKeeper, `weft cluster create` for 3 nodes, then
`weft cluster add-node` (node 4 joins: it streams its ranges, marks itself NORMAL) and `weft
cluster remove-node` (node 1 leaves: the lowest-id live NORMAL node streams its ranges and removes
it). No row may be lost or stale after either change: every row is read back through every
node, and after the leave also with one more node killed (each row still has a quorum of its
new replicas only if the stream put it there).

a. 3 nodes, 60 rows written through all of them.
b. add-node 4 + its weftd: the ring goes to epoch 2 (JOINING) and then 3 (NORMAL) without help;
   node 4 repaired rows; rows written during and after the change read back from every node.
c. remove-node 1: epoch 4 (LEAVING) then 5 (removed); node 1 is stopped; every row reads back
   through nodes 2, 3 and 4, then with node 2 killed as well (3 and 4 hold a quorum of every
   row whose new replicas they are).
"""

import json

from weftlib import Cli, check, check_equal, free_port, log, poll_until, run, run_test
from zk_server import ZkServer

ZK_ROOT = "/weft"
SESSION_MS = 4000
ROWS = 60


class Node:
    def __init__(self, harness, node_id, zk):
        self.node_id = node_id
        self.daemon = harness.new_daemon(name=f"node{node_id}", disk_size="1G")
        self.rpc_port = free_port()
        while self.rpc_port in (self.daemon.admin_port, self.daemon.nbd_port):
            self.rpc_port = free_port()
        self.daemon.extra_args = ["--node-id", str(node_id), "--zookeeper", zk.connect_string,
                                  "--zookeeper-root", ZK_ROOT,
                                  "--zookeeper-session-timeout-ms", str(SESSION_MS)]
        self.cli = Cli(harness.args.weft, self.daemon)

    def spec(self):
        return f"{self.node_id}=127.0.0.1:{self.rpc_port},{self.daemon.admin_address}"

    def view(self):
        return self.cli.json("cluster", "show")

    def put(self, key, value, version):
        return self.cli.json("meta", "put", key, value, "--version", str(version))["version"]

    def get(self, key):
        row = self.cli.json("meta", "get", key)
        return row["value"], row["version"]


def check_rows(nodes, expected, what):
    for node in nodes:
        for key, value_version in sorted(expected.items()):
            check_equal(node.get(key), value_version, f"{key} through node {node.node_id} {what}")
        rows = node.cli.json("meta", "scan", "r/", "--limit", "1000")["rows"]
        check_equal({r["key"]: (r["value"], r["version"]) for r in rows}, expected,
                    f"scan through node {node.node_id} {what}")


def wait_ring(node, epoch, states, timeout_s=60):
    """Until `node` sees ring epoch `epoch` with these {node_id: ring_state}."""
    def settled():
        view = node.view()
        seen = {n["node_id"]: n["ring_state"] for n in view["nodes"]}
        return view["ring_epoch"] == epoch and seen == states
    poll_until(settled, timeout_s, f"ring epoch {epoch} with {states} seen by node {node.node_id}",
               interval_s=0.2)


def main(harness):
    harness.weftd.stop()  # The harness's single node is not part of this test.
    with ZkServer() as zk:
        nodes = {i: Node(harness, i, zk) for i in (1, 2, 3)}
        log("a. 3 nodes, rows through all of them")
        argv = [harness.args.weft, "cluster", "create", "--zookeeper", zk.connect_string,
                "--zookeeper-root", ZK_ROOT, "--name", "ring"]
        for node in nodes.values():
            argv += ["--node", node.spec()]
        run(argv)
        for node in nodes.values():
            node.daemon.start()
        expected = {}
        for i in range(ROWS):
            key = f"r/{i:03}"
            expected[key] = (f"v{i}", nodes[1 + i % 3].put(key, f"v{i}", 0))
        check_rows(nodes.values(), expected, "before the join")

        log("b. node 4 joins")
        nodes[4] = Node(harness, 4, zk)
        added = run([harness.args.weft, "cluster", "add-node", "--zookeeper", zk.connect_string,
                     "--zookeeper-root", ZK_ROOT, "--node", nodes[4].spec()])
        check("added as JOINING" in added.stdout, added.stdout)
        again = run([harness.args.weft, "cluster", "add-node", "--zookeeper", zk.connect_string,
                     "--zookeeper-root", ZK_ROOT, "--node", nodes[4].spec()], check_rc=False)
        check(again.returncode != 0 and "already" in again.stderr, again.stderr)
        # Writes while node 4 is JOINING (before its weftd runs) need joint quorums of the
        # old and new replica sets: with node 4 down they still have a majority of each.
        expected["r/000"] = ("during", nodes[2].put("r/000", "during", expected["r/000"][1]))
        nodes[4].daemon.start()
        wait_ring(nodes[1], 3, {1: "normal", 2: "normal", 3: "normal", 4: "normal"})
        repaired = nodes[4].view()["ring"]["stream_keys_repaired"]
        check(repaired > 0, f"node 4 repaired {repaired} rows while joining")
        log(f"node 4 joined after repairing {repaired} rows")
        expected["r/001"] = ("after", nodes[4].put("r/001", "after", expected["r/001"][1]))
        check_rows(nodes.values(), expected, "after the join")

        log("c. node 1 leaves")
        removed = run([harness.args.weft, "cluster", "remove-node", "--zookeeper",
                       zk.connect_string, "--zookeeper-root", ZK_ROOT, "--node-id", "1"])
        check("LEAVING" in removed.stdout, removed.stdout)
        wait_ring(nodes[2], 5, {2: "normal", 3: "normal", 4: "normal"})
        nodes[1].daemon.stop()
        remaining = [nodes[2], nodes[3], nodes[4]]
        check_rows(remaining, expected, "after the leave")
        # Each row now lives on 3 of {2, 3, 4}, so on all of them: one more node down keeps a
        # quorum, and the rows must have been streamed onto the new replicas to be read.
        nodes[2].daemon.kill()
        for node in (nodes[3], nodes[4]):
            for key, value_version in sorted(expected.items()):
                check_equal(node.get(key), value_version, f"{key} via node {node.node_id}, 2 down")
        for node in (nodes[3], nodes[4]):
            node.daemon.stop()


if __name__ == "__main__":
    run_test(main, description=__doc__)
