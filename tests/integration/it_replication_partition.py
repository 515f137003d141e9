"""A real network partition of the replicated data path (RF2): each weftd runs in its own network
namespace, on a veth pair whose root-side end is a port of a bridge in the root namespace;
ZooKeeper listens on the bridge's address. Taking node 1's bridge port down isolates node 1 from
ZooKeeper and from both peers, while clients inside node 1's namespace still reach it.

1. A 128 MiB vDisk on node 1 (RF2 container): fio (nbd engine, randwrite 4k/64k, crc32c headers,
   verify state saved) writes its first 64 MiB through node 1; qemu-io writes patterns above.
2. node 1's bridge port goes down. A write sent to node 1 from inside its namespace right away,
   and another once a successor serves the vDisk, must not be acknowledged (qemu-io under a
   timeout: it fails or hangs). Node 2 or 3 takes the vDisk over (takeover time printed); writes
   through it succeed. What node 1 answers meanwhile (from inside its namespace) is printed.
3. The link comes back up: node 1 must give the vDisk up (404, NBD refused), the successor stays
   the only owner, fio --verify_only passes through the successor and every pattern reads back as
   acknowledged (the isolated owner's writes nowhere).

Needs root (ip netns, veth, bridge). Everything the test creates is named weftpart-PID-*
(namespaces) or wpPID* (links) and removed on every exit path; leftovers of a test process that
died by SIGKILL are removed by the next run.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import time

from weftlib import (MIB, Cli, Cluster, ClusterNode, TestFailure, Weftd, _recv_exact,
                     admin_request, check, check_equal, fio_job_report, log, nbd_refused,
                     poll_until, run, run_test, spawn, vdisk_path, wait_process)
from zk_server import ZkServer

# As it_replication: an isolated owner's session expires SESSION_MS after the partition.
SESSION_MS = 4000
NODE_ARGS = ["--cache-size", "256M"]
CONTAINER = "rf2"
VDISK = "part"
VDISK_SIZE = "128M"
FIO_SIZE_BYTES = 64 * MIB
# qemu-io patterns live above fio's range.
PATTERN_BASE = 64 * MIB
PATTERN_BYTES = 64 * 1024
# Pattern blocks, one per MiB (each in its own vBlock).
PATTERN_BLOCKS = 16
# Hang guards, not timing assertions.
TAKEOVER_TIMEOUT_S = 60
GIVE_UP_TIMEOUT_S = 60
# How long an isolated write may hang before it counts as "not acknowledged (timed out)".
ISOLATED_WRITE_TIMEOUT_S = 25
HEAL_LIVE_TIMEOUT_S = 90
# What qemu-io prints for a read that was answered ("read failed: ..." is not one).
ACKNOWLEDGED_READ = re.compile(r"read \d+/\d+ bytes")


def sh(*argv, check_rc=True):
    """An `ip` command for the test network (quiet: the log shows only what fails)."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check_rc and result.returncode != 0:
        raise TestFailure(f"{' '.join(map(str, argv))} failed: {result.stderr.strip()}")
    return result


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Network:
    """A bridge in the root namespace (ZooKeeper's address) and one namespace per node, joined to
    the bridge by a veth pair. partition(i)/heal(i) take node i's bridge port down/up."""

    def __init__(self, node_count):
        self.pid = os.getpid()
        self.bridge = f"wp{self.pid}br"
        self.namespaces = {}
        self.ports = {}
        self.hosts = {}
        self._remove_leftovers()
        self.prefix = self._free_prefix()
        self.root_host = f"{self.prefix}.1"
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{self.root_host}/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for i in range(1, node_count + 1):
                self._add_node(i)
        except BaseException:
            self.close()
            raise
        log(f"network: bridge {self.bridge} {self.root_host}/24, nodes "
            f"{ {i: (self.namespaces[i], self.hosts[i], self.ports[i]) for i in self.hosts} }")

    def _remove_leftovers(self):
        """Namespaces and links of earlier runs whose test process is gone (killed by ctest's
        timeout, which leaves no chance to clean up)."""
        for line in sh("ip", "netns", "list").stdout.splitlines():
            match = re.match(r"weftpart-(\d+)-\d+\b", line)
            if match and not pid_alive(int(match.group(1))):
                sh("ip", "netns", "del", line.split()[0], check_rc=False)
        for line in sh("ip", "-o", "link", "show").stdout.splitlines():
            match = re.match(r"\d+: (wp(\d+)(?:br|v\d+))[:@]", line)
            if match and not pid_alive(int(match.group(2))):
                sh("ip", "link", "del", match.group(1), check_rc=False)

    @staticmethod
    def _free_prefix():
        """A 10.N.M.0/24 that no address or route here mentions yet."""
        used = sh("ip", "-o", "addr").stdout + sh("ip", "route", "show", "table", "all").stdout
        for second in range(200, 250):
            prefix = f"10.{second}.{os.getpid() % 250}"
            if f"{prefix}." not in used and f"10.{second}.0.0" not in used:
                return prefix
        raise TestFailure("no free 10.x.y.0/24 for the test network")

    def _add_node(self, i):
        namespace = f"weftpart-{self.pid}-{i}"
        port = f"wp{self.pid}v{i}"
        sh("ip", "netns", "add", namespace)
        self.namespaces[i] = namespace
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        self.ports[i] = port
        sh("ip", "link", "set", port, "master", self.bridge, "up")
        host = f"{self.prefix}.{10 + i}"
        sh("ip", "-n", namespace, "addr", "add", f"{host}/24", "dev", "eth0")
        sh("ip", "-n", namespace, "link", "set", "eth0", "up")
        sh("ip", "-n", namespace, "link", "set", "lo", "up")
        self.hosts[i] = host

    def in_namespace(self, i, argv):
        return ["ip", "netns", "exec", self.namespaces[i], *argv]

    def partition(self, i):
        log(f"$ ip link set {self.ports[i]} down   (node {i} isolated)")
        sh("ip", "link", "set", self.ports[i], "down")

    def heal(self, i):
        log(f"$ ip link set {self.ports[i]} up   (node {i} back)")
        sh("ip", "link", "set", self.ports[i], "up")

    def wait_reachable(self, host, port, timeout_s=30):
        def connects():
            try:
                with socket.create_connection((host, port), timeout=1):
                    return True
            except OSError:
                return False
        poll_until(connects, timeout_s, f"{host}:{port} to be reachable", interval_s=0.1)

    def close(self):
        """The veth pairs go first: a namespace outlives `ip netns del` while sockets of its
        killed processes linger (retransmitting into a link that is down), and its veth end
        with it."""
        for port in self.ports.values():
            sh("ip", "link", "del", port, check_rc=False)
        self.ports.clear()
        for namespace in self.namespaces.values():
            sh("ip", "netns", "del", namespace, check_rc=False)
        self.namespaces.clear()
        sh("ip", "link", "del", self.bridge, check_rc=False)


class NsZkServer(ZkServer):
    """A ZooKeeper server listening on `host` (the bridge's address) instead of 127.0.0.1."""

    def __init__(self, host, **kwargs):
        self.host = host
        super().__init__(start=False, **kwargs)
        for index in range(len(self.client_ports)):
            config_path = os.path.join(self._server_dir(index), "zoo.cfg")
            with open(config_path) as config:
                text = config.read()
            with open(config_path, "w") as config:
                config.write(text.replace("clientPortAddress=127.0.0.1",
                                          f"clientPortAddress={host}"))
        self.start()

    @property
    def connect_string(self):
        return ",".join(f"{self.host}:{port}" for port in self.client_ports)

    def address(self, index):
        return f"{self.host}:{self.client_ports[index]}"


class NsWeftd(Weftd):
    """A weftd started with `ip netns exec` (which execs: the PID is weftd's) and listening on its
    namespace's address."""

    def __init__(self, binary, work_dir, *, network, node_id, **kwargs):
        super().__init__(binary, work_dir, **kwargs)
        self.network = network
        self.host = network.hosts[node_id]
        self.node_id = node_id

    @property
    def admin_address(self):
        return f"{self.host}:{self.admin_port}"

    def uri(self, export_name):
        return f"nbd://{self.host}:{self.nbd_port}/{export_name}"

    def argv(self):
        return self.network.in_namespace(self.node_id, [
            self.binary, "--data-dir", self.data_dir,
            "--disk", f"{self.disk_path}:{self.disk_size}",
            "--listen-nbd", f"{self.host}:{self.nbd_port}", "--listen-admin", self.admin_address,
            "--log-level", self.log_level, *self.extra_args])

    def _nbd_accepts(self):
        """As Weftd._nbd_accepts, on the namespace's address."""
        greeted = False
        try:
            with socket.create_connection((self.host, self.nbd_port), timeout=2) as sock:
                sock.settimeout(5)
                greeted = _recv_exact(sock, 18)[:8] == b"NBDMAGIC"
                if greeted:
                    sock.sendall(struct.pack(">I", 3))
                    sock.sendall(struct.pack(">QII", 0x49484156454F5054, 2, 0))
                    _recv_exact(sock, 20)
        except OSError:
            pass
        return greeted


class NsClusterNode(ClusterNode):
    def __init__(self, harness, node_id, zk_connect, *, network, session_ms, extra_args=()):
        self.node_id = node_id
        self.daemon = NsWeftd(harness.args.weftd, harness.work_dir, network=network,
                              node_id=node_id, name=f"node{node_id}", disk_size="1G")
        harness.daemons.append(self.daemon)
        self.rpc_port = self.daemon.admin_port + 1
        while self.rpc_port in (self.daemon.admin_port, self.daemon.nbd_port):
            self.rpc_port += 1
        self.daemon.extra_args = ["--node-id", str(node_id), "--zookeeper", zk_connect,
                                  "--zookeeper-root", "/weft",
                                  "--zookeeper-session-timeout-ms", str(session_ms),
                                  *extra_args]
        self.cli = Cli(harness.args.weft, self.daemon)

    def spec(self):
        return f"{self.node_id}={self.daemon.host}:{self.rpc_port},{self.daemon.admin_address}"


class NsCluster(Cluster):
    def __init__(self, harness, zk, network, node_count, *, session_ms, extra_args=()):
        self.harness = harness
        self.zk = zk
        self.name = "itpart"
        self.redundancy_factor = None
        self.nodes = {i: NsClusterNode(harness, i, zk.connect_string, network=network,
                                       session_ms=session_ms, extra_args=extra_args)
                      for i in range(1, node_count + 1)}


def fio_argv(uri, output_path, *extra):
    """Write phase and verification share every option that decides what fio writes."""
    return ["fio", "--name=part", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
            "--bssplit=4k/70:64k/30", "--iodepth=8", f"--size={FIO_SIZE_BYTES}",
            "--verify=crc32c", "--verify_fatal=1", "--randseed=4242", "--output-format=json",
            f"--output={output_path}", *extra]


def qemu_io_argv(uri, *commands):
    argv = ["qemu-io", "-f", "raw"]
    for command in commands:
        argv += ["-c", command]
    return argv + [uri]


def wait_drained(node):
    def drained():
        oplog = node.stats(VDISK).get("oplog", {})
        check("records_undrained" in oplog, f"no oplog.records_undrained in the stats: {oplog}")
        return oplog["records_undrained"] == 0
    poll_until(drained, 60, f"the OpLog of {VDISK} on node {node.node_id} to drain",
               interval_s=0.1)


def pattern_offset(index):
    return PATTERN_BASE + index * MIB


def write_patterns(uri, patterns):
    """{index: byte} written (and flushed) with qemu-io; every write must be acknowledged."""
    commands = [f"write -P {byte:#x} {pattern_offset(i)} {PATTERN_BYTES}"
                for i, byte in sorted(patterns.items())]
    result = run(qemu_io_argv(uri, *commands, "flush"), timeout_s=60)
    check_equal(result.stdout.count("wrote "), len(patterns),
                f"acknowledged qemu-io writes through {uri}:\n{result.stdout}{result.stderr}")


def read_patterns(uri, patterns):
    """Every pattern block reads back as {index: byte} says (0 for never written)."""
    commands = [f"read -P {byte:#x} {pattern_offset(i)} {PATTERN_BYTES}"
                for i, byte in sorted(patterns.items())]
    result = run(qemu_io_argv(uri, *commands), timeout_s=60, check_rc=False)
    output = result.stdout + result.stderr
    check(result.returncode == 0 and "Pattern verification failed" not in output and
          len(ACKNOWLEDGED_READ.findall(output)) == len(patterns),
          f"pattern blocks read through {uri} differ from what was acknowledged "
          f"({sorted(patterns.items())}):\n{output}")


def node1_view(network, n1):
    """GET /api/v1/vdisks/VDISK on node 1 from inside its namespace: the HTTP status or what
    curl said."""
    url = f"http://{n1.daemon.admin_address}{vdisk_path(VDISK)}"
    result = subprocess.run(network.in_namespace(1, ["curl", "-s", "-o", "/dev/null", "-w",
                                                     "%{http_code}", "--max-time", "3", url]),
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else f"curl exit {result.returncode}"


def isolated_write(h, network, n1, label, byte, index):
    """qemu-io inside node 1's namespace writes (and flushes) one pattern block through node 1,
    under a timeout. Returns the Popen and its output path."""
    output = h.path(f"isolated-{label}.out")
    argv = network.in_namespace(1, ["timeout", "-s", "KILL", str(ISOLATED_WRITE_TIMEOUT_S),
                                    *qemu_io_argv(n1.uri(VDISK), f"write -P {byte:#x} "
                                                  f"{pattern_offset(index)} {PATTERN_BYTES}",
                                                  "flush")])
    return spawn(argv, output_path=output), output


def isolated_outcome(process, output_path, started):
    code = wait_process(process, timeout_s=ISOLATED_WRITE_TIMEOUT_S + 30)
    elapsed_s = time.monotonic() - started
    with open(output_path, errors="replace") as file:
        text = file.read().strip()
    acknowledged = "wrote " in text
    if code == -signal.SIGKILL or code == 128 + signal.SIGKILL or code == 137:
        what = f"timed out (no answer in {ISOLATED_WRITE_TIMEOUT_S} s, killed)"
    elif acknowledged:
        what = f"ACKNOWLEDGED after {elapsed_s:.1f} s"
    else:
        what = f"failed after {elapsed_s:.1f} s (exit code {code})"
    return acknowledged, what, text


def _exit_on_sigterm(signal_number, frame):
    """SIGTERM (ctest, a user) unwinds through the cleanup of the processes and the network."""
    raise SystemExit(f"signal {signal_number}")


def main(h):
    check(os.geteuid() == 0, "this test needs root (ip netns, veth pairs, a bridge)")
    h.weftd.stop()  # The harness's single node is not part of this test.
    network = Network(3)
    cluster = None
    previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with NsZkServer(network.root_host, base_dir=h.work_dir) as zk:
            cluster = NsCluster(h, zk, network, 3, session_ms=SESSION_MS, extra_args=NODE_ARGS)
            cluster.create()
            try:
                partition_test(h, network, cluster)
                cluster.stop_all()
            finally:
                for node in cluster.nodes.values():
                    if node.daemon.alive():
                        os.kill(node.daemon.process.pid, signal.SIGCONT)
                        node.daemon.kill()
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        network.close()


def partition_test(h, network, cluster):
    n1, n2, n3 = cluster.node(1), cluster.node(2), cluster.node(3)
    n1.cli.run("container", "create", CONTAINER, "--rf", "2")
    n1.cli.create_vdisk(VDISK, VDISK_SIZE, container=CONTAINER)
    replication = n1.replication(VDISK)
    check_equal(replication["owner_node"], 1, "owner of a vDisk created through node 1")
    epoch = replication["owner_epoch"]

    log("1. fio and qemu-io patterns through node 1")
    fio_output = h.path("fio-write.json")
    run(fio_argv(n1.uri(VDISK), fio_output, "--do_verify=0", "--verify_state_save=1"),
        cwd=h.work_dir, timeout_s=120)
    job = fio_job_report(fio_output, "write phase through node 1")
    log(f"   fio wrote {job['write']['io_bytes']} bytes in {job['write']['total_ios']} writes "
        f"({job['write']['iops']:.0f} IOPS)")
    # First copies of the pattern blocks, drained into egroups (on node 1 and one peer each);
    # then overwrites that are acknowledged but still in the OpLog when the link goes down, so
    # that the successor must drain them into those egroups, node 1's copies unreachable.
    write_patterns(n1.uri(VDISK), {i: 0x40 + i for i in range(PATTERN_BLOCKS)})
    wait_drained(n1)
    expected = {i: 0x60 + i for i in range(PATTERN_BLOCKS)}
    expected[PATTERN_BLOCKS] = 0x00  # Written only by the successor.
    write_patterns(n1.uri(VDISK), {i: b for i, b in expected.items() if b})
    log(f"   node 1 before the partition: {n1.replication(VDISK)}, "
        f"oplog {n1.stats(VDISK).get('oplog')}")

    log("2. node 1's link down: node 1 isolated from ZooKeeper and both peers")
    partitioned_at = time.monotonic()
    network.partition(1)
    early, early_output = isolated_write(h, network, n1, "early", 0xE1, 1)
    views = [(0.0, node1_view(network, n1))]
    owner, waited_s = cluster.wait_owner(VDISK, [n2, n3], TAKEOVER_TIMEOUT_S)
    takeover_s = time.monotonic() - partitioned_at
    views.append((takeover_s, node1_view(network, n1)))
    log(f"   TAKEOVER: node {owner.node_id} serves {VDISK} {takeover_s:.1f} s after the partition "
        f"(session timeout {SESSION_MS / 1000:.0f} s)")
    check(owner.replication(VDISK)["owner_epoch"] > epoch, "owner_epoch after the takeover")
    late_started = time.monotonic()
    late, late_output = isolated_write(h, network, n1, "late", 0xE2, 2)
    # The successor takes writes while node 1 is still cut off.
    expected.update({1: 0xB1, PATTERN_BLOCKS: 0xB4})
    write_patterns(owner.uri(VDISK), {1: 0xB1, PATTERN_BLOCKS: 0xB4})

    early_acked, early_what, early_text = isolated_outcome(early, early_output, partitioned_at)
    late_acked, late_what, late_text = isolated_outcome(late, late_output, late_started)
    views.append((time.monotonic() - partitioned_at, node1_view(network, n1)))
    log(f"   ISOLATED OWNER: the write sent right after the partition {early_what}: "
        f"{early_text!r}")
    log(f"   ISOLATED OWNER: the write sent after the takeover {late_what}: {late_text!r}")
    log("   node 1's answer for GET vdisk (from inside its namespace), seconds after the "
        f"partition: {views}")
    check(not early_acked, "node 1, cut off from its peers and ZooKeeper, acknowledged a write "
          f"sent right after the partition:\n{early_text}")
    check(not late_acked, f"node 1 acknowledged a write after node {owner.node_id} took the vDisk "
          f"over (split brain):\n{late_text}")
    check_equal(cluster.owners(VDISK, [n2, n3]), [owner.node_id],
                "owners among nodes 2 and 3 while node 1 is cut off")

    stale = isolated_read(network, n1, 1)
    log(f"   ISOLATED OWNER: a read of block 1 (0x61 before the partition, 0xb1 since the "
        f"takeover) through node 1: {stale}")
    check(not ACKNOWLEDGED_READ.search(stale), "node 1, cut off and fenced, served a read of a "
          f"block the successor has since overwritten: {stale}")

    log("3. heal: everything acknowledged verifies; node 1 must give the vDisk up")
    healed_at = time.monotonic()
    network.heal(1)
    network.wait_reachable(n1.daemon.host, n1.daemon.admin_port)
    # Verified first, while node 1 may still act as the owner (it retries its stale OpLog).
    verify_through(h, owner, job, expected)

    poll_until(lambda: admin_request(n1.daemon.admin_address, "GET", vdisk_path(VDISK),
                                     timeout_s=5)[0] == 404, GIVE_UP_TIMEOUT_S,
               f"node 1 to give {VDISK} up after the heal (it still answers 200 for it)",
               interval_s=0.2)
    log(f"   node 1 answers 404 for {VDISK} {time.monotonic() - healed_at:.1f} s after the heal")
    check(nbd_refused(n1.uri(VDISK)), f"node 1 still serves {VDISK} over NBD after the heal")
    cluster.wait_live([1, 2, 3], timeout_s=HEAL_LIVE_TIMEOUT_S)
    check_equal(cluster.owners(VDISK), [owner.node_id], f"owners of {VDISK} after the heal")
    # Once it gave up, a write from inside node 1's namespace is refused outright.
    refused = run(network.in_namespace(1, qemu_io_argv(n1.uri(VDISK), "write -P 0xe3 0 4096")),
                  check_rc=False, timeout_s=60)
    check("wrote " not in refused.stdout, f"node 1 acknowledged a write after the heal:\n"
          f"{refused.stdout}")
    read_patterns(owner.uri(VDISK), expected)
    log(f"   node {owner.node_id} after node 1 gave up: {owner.replication(VDISK)}")


def isolated_read(network, n1, index):
    """qemu-io inside node 1's namespace reads a pattern block through node 1 under a timeout;
    returns what happened."""
    argv = network.in_namespace(1, ["timeout", "-s", "KILL", "10", *qemu_io_argv(
        n1.uri(VDISK), f"read -v {pattern_offset(index)} 16")])
    result = run(argv, check_rc=False, timeout_s=60)
    if result.returncode == 137:
        return "timed out (no answer in 10 s, killed)"
    return f"exit code {result.returncode}: {(result.stdout + result.stderr).strip()!r}"


def verify_through(h, owner, job, expected):
    """fio --verify_only of the write phase and every pattern block, through the new owner."""
    verify_output = h.path("fio-verify.json")
    run(fio_argv(owner.uri(VDISK), verify_output, "--verify_only", "--verify_state_load=1",
                 "--verify_state_save=0", f"--number_ios={job['write']['total_ios']}"),
        cwd=h.work_dir, timeout_s=120)
    verified = fio_job_report(verify_output, f"verify through node {owner.node_id}")
    check_equal(verified["read"]["io_bytes"], job["write"]["io_bytes"],
                f"bytes fio verified through node {owner.node_id}")
    read_patterns(owner.uri(VDISK), expected)
    log(f"   fio verified {verified['read']['io_bytes']} bytes and the patterns "
        f"{ {i: hex(b) for i, b in expected.items()} } read back through node {owner.node_id}")


if __name__ == "__main__":
    run_test(main, description=__doc__)
