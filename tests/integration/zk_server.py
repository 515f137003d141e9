"""Real ZooKeeper servers for weft's integration tests (the Python twin of
src/cluster/zookeeper_test_server.h).

    from zk_server import ZkServer
    with ZkServer() as zk:                    # one standalone server
        ... weftd --zookeeper zk.connect_string ...
        zk.kill(); zk.restart()               # crash and come back on the same port and data
    with ZkServer(servers=3) as zk:           # a three-server ensemble
        zk.stop(0)                            # one server down: the quorum survives

Each server runs `java -Xmx128m -cp CONFDIR:/usr/share/java/zookeeper.jar
org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg` (QuorumPeerMain for an ensemble member)
on 127.0.0.1 and a free port, with its
data dir under a fresh temporary directory, and counts as started once it has established a real
client session (the ZooKeeper handshake, spoken here directly: `ruok` answers ~1 s before the
server accepts sessions). Sessions may be 1 to 60 s long (tickTime 500 ms). Servers die with the
test process (PR_SET_PDEATHSIG) and are killed at exit by PID.

ZkClient is a minimal synchronous client (session, children, get, exists, create) for checking what
weft wrote, e.g. `ZkClient(zk.connect_string).children("/weft/members")`.

Standard library only; run with /usr/bin/python3 like the other integration tests.
`python3 zk_server.py --self-test [--servers 3]` checks this module against real servers.
"""

import argparse
import atexit
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
# A server must accept a session within this long after it is started (JVM start ~1.5 s).
START_TIMEOUT_S = 60
# SIGTERM must end a server within this long, or it is killed (it takes ~2 s).
STOP_TIMEOUT_S = 20
TICK_MS = 500

_started = {}  # pid -> Popen, for the exit handler.


def _kill_leftovers():
    for process in list(_started.values()):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _started.clear()


atexit.register(_kill_leftovers)


def _die_with_parent():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    os.setpgrp()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ZkError(Exception):
    """A ZooKeeper error code in a reply (-101 no node, ...), or a failed handshake."""

    NO_NODE = -101

    def __init__(self, code, what):
        super().__init__(f"{what}: zookeeper error {code}")
        self.code = code


class ZkClient:
    """A minimal ZooKeeper client: one session, synchronous requests, no watches."""

    _CREATE = 1
    _GET_DATA = 4
    _EXISTS = 3
    _GET_CHILDREN = 8
    _CLOSE = -11

    def __init__(self, connect_string, timeout_s=10, session_timeout_ms=10000):
        self._sock = None
        self._xid = 0
        last_error = None
        for host_port in connect_string.split(","):
            host, port = host_port.rsplit(":", 1)
            try:
                self._connect(host, int(port), timeout_s, session_timeout_ms)
                return
            except (OSError, ZkError) as error:
                last_error = error
                self.close()
        raise ZkError(0, f"no session with {connect_string}: {last_error}")

    def _connect(self, host, port, timeout_s, session_timeout_ms):
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
        body = struct.pack(">iqiqi16s?", 0, 0, session_timeout_ms, 0, 16, b"\0" * 16, False)
        self._send(body)
        reply = self._receive()
        _, negotiated_ms, self.session_id = struct.unpack(">iiq", reply[:16])
        if negotiated_ms <= 0:
            raise ZkError(0, "session refused")

    def _send(self, body):
        self._sock.sendall(struct.pack(">i", len(body)) + body)

    def _receive(self):
        (length,) = struct.unpack(">i", self._receive_exact(4))
        return self._receive_exact(length)

    def _receive_exact(self, count):
        data = b""
        while len(data) < count:
            chunk = self._sock.recv(count - len(data))
            if not chunk:
                raise ZkError(0, "connection closed by the server")
            data += chunk
        return data

    def _request(self, op_type, path, what, tail=b"\0"):
        """Sends header, path and `tail` (by default the watch flag, false); returns the reply
        body after its header, or raises ZkError."""
        self._xid += 1
        encoded = path.encode()
        self._send(struct.pack(">iii", self._xid, op_type, len(encoded)) + encoded + tail)
        while True:
            reply = self._receive()
            xid, _, error = struct.unpack(">iqi", reply[:16])
            if xid == -2:  # A ping reply.
                continue
            if error != 0:
                raise ZkError(error, f"{what} {path}")
            return reply[16:]

    def children(self, path):
        """Names of `path`'s children, sorted."""
        body = self._request(self._GET_CHILDREN, path, "get_children")
        (count,) = struct.unpack(">i", body[:4])
        names, offset = [], 4
        for _ in range(count):
            (length,) = struct.unpack(">i", body[offset:offset + 4])
            names.append(body[offset + 4:offset + 4 + length].decode())
            offset += 4 + length
        return sorted(names)

    def get(self, path):
        """The data of `path` (bytes); ZkError with code NO_NODE if it does not exist."""
        body = self._request(self._GET_DATA, path, "get")
        (length,) = struct.unpack(">i", body[:4])
        return b"" if length < 0 else body[4:4 + length]

    def create(self, path, data=b""):
        """Creates a persistent znode readable and writable by anyone; returns its path."""
        scheme, identity = b"world", b"anyone"
        acl = (struct.pack(">ii", 1, 31) + struct.pack(">i", len(scheme)) + scheme +
               struct.pack(">i", len(identity)) + identity)
        tail = struct.pack(">i", len(data)) + data + acl + struct.pack(">i", 0)
        body = self._request(self._CREATE, path, "create", tail)
        (length,) = struct.unpack(">i", body[:4])
        return body[4:4 + length].decode()

    def exists(self, path):
        try:
            self._request(self._EXISTS, path, "exists")
            return True
        except ZkError as error:
            if error.code == ZkError.NO_NODE:
                return False
            raise

    def close(self):
        if self._sock is None:
            return
        try:
            self._xid += 1
            self._send(struct.pack(">ii", self._xid, self._CLOSE))
            self._receive()
        except (OSError, ZkError):
            pass
        self._sock.close()
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ZkServer:
    """One standalone ZooKeeper server, or an ensemble of `servers` (3 for a quorum)."""

    def __init__(self, servers=1, base_dir=None, keep=False, start=True):
        self.directory = tempfile.mkdtemp(prefix="weft-zk-", dir=base_dir)
        self.keep = keep
        self.client_ports = [_free_port() for _ in range(servers)]
        peer_ports = [(_free_port(), _free_port()) for _ in range(servers)]
        self._processes = [None] * servers
        for index in range(servers):
            server_dir = self._server_dir(index)
            os.makedirs(os.path.join(server_dir, "data"))
            lines = [
                f"tickTime={TICK_MS}", "initLimit=20", "syncLimit=10",
                "minSessionTimeout=1000", "maxSessionTimeout=60000",
                f"dataDir={server_dir}/data", f"clientPort={self.client_ports[index]}",
                "clientPortAddress=127.0.0.1", "admin.enableServer=false",
                # The log survives a killed server (it is in the page cache); fsync would only
                # slow the tests down.
                "forceSync=no", "preAllocSize=4096",
            ]
            if servers > 1:
                with open(os.path.join(server_dir, "data", "myid"), "w") as myid:
                    myid.write(f"{index + 1}\n")
                for peer, (quorum_port, election_port) in enumerate(peer_ports):
                    lines.append(f"server.{peer + 1}=127.0.0.1:{quorum_port}:{election_port}")
            with open(os.path.join(server_dir, "zoo.cfg"), "w") as config:
                config.write("\n".join(lines) + "\n")
        if start:
            self.start()

    def _server_dir(self, index):
        return os.path.join(self.directory, f"server{index + 1}")

    def _indexes(self, index):
        return range(len(self._processes)) if index is None else [index]

    @property
    def connect_string(self):
        return ",".join(f"127.0.0.1:{port}" for port in self.client_ports)

    def address(self, index):
        return f"127.0.0.1:{self.client_ports[index]}"

    def running(self, index=0):
        process = self._processes[index]
        return process is not None and process.poll() is None

    def start(self, index=None):
        """Starts the server(s) and waits for a session on each (an ensemble member answers
        only once a quorum is up, so all are launched before any is waited for)."""
        indexes = self._indexes(index)
        for i in indexes:
            if self.running(i):
                continue
            server_dir = self._server_dir(i)
            with open(os.path.join(server_dir, "server.log"), "ab") as log:
                # ZooKeeperServerMain ignores server.N lines: a member needs QuorumPeerMain.
                main_class = ("org.apache.zookeeper.server.quorum.QuorumPeerMain"
                              if len(self._processes) > 1
                              else "org.apache.zookeeper.server.ZooKeeperServerMain")
                process = subprocess.Popen(
                    ["java", "-Xmx128m", "-cp", f"{server_dir}:{ZOOKEEPER_JAR}", main_class,
                     os.path.join(server_dir, "zoo.cfg")],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent)
            self._processes[i] = process
            _started[process.pid] = process
        for i in indexes:
            self._wait_for_session(i)

    def _wait_for_session(self, index):
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = None
        while time.monotonic() < deadline:
            if not self.running(index):
                break
            try:
                with ZkClient(self.address(index), timeout_s=2):
                    return
            except (OSError, ZkError) as error:
                last_error = error
                time.sleep(0.1)
        self.kill(index)
        raise RuntimeError(f"zookeeper server {index + 1} ({self.address(index)}) accepted no "
                           f"session: {last_error}\n--- log tail\n{self.log_tail(index)}")

    def _signal(self, index, signal_number):
        for i in self._indexes(index):
            process = self._processes[i]
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal_number)
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            _started.pop(process.pid, None)
            self._processes[i] = None

    def stop(self, index=None):
        """SIGTERM, and waits for the exit (SIGKILL after STOP_TIMEOUT_S)."""
        self._signal(index, signal.SIGTERM)

    def kill(self, index=None):
        """SIGKILL, and waits for the exit: a crash."""
        self._signal(index, signal.SIGKILL)

    def restart(self, index=None):
        """Stops (if running) and starts again on the same ports and data dirs: sessions and
        znodes survive."""
        self.stop(index)
        self.start(index)

    def log_tail(self, index=0, size_bytes=4000):
        try:
            with open(os.path.join(self._server_dir(index), "server.log"), "rb") as log:
                return log.read()[-size_bytes:].decode(errors="replace")
        except OSError:
            return ""

    def close(self):
        """Kills every server and removes the directory (unless keep)."""
        self.kill()
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _self_test(servers):
    with ZkServer(servers=servers) as zk:
        print(f"started {servers} server(s): {zk.connect_string}")
        with ZkClient(zk.address(0)) as client:
            assert client.create("/weft-self-test", b"hello") == "/weft-self-test"
        # Every server sees the write (an ensemble replicates it; not three standalone servers).
        for index in range(servers):
            with ZkClient(zk.address(index)) as client:
                assert client.get("/weft-self-test") == b"hello", index
        with ZkClient(zk.connect_string) as client:
            assert "zookeeper" in client.children("/"), client.children("/")
            assert client.exists("/zookeeper")
            assert not client.exists("/weft")
            assert client.exists("/weft-self-test")
            try:
                client.get("/no/such/node")
                raise AssertionError("get of a missing znode succeeded")
            except ZkError as error:
                assert error.code == ZkError.NO_NODE, error
        zk.kill(0)
        assert not zk.running(0)
        if servers > 1:
            # Two of three still form a quorum.
            with ZkClient(zk.address(1)) as client:
                client.children("/")
        zk.restart(0)
        with ZkClient(zk.address(0)) as client:
            client.children("/")
        zk.stop()
    print("zk_server self-test passed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--servers", type=int, default=1)
    arguments = parser.parse_args()
    if arguments.self_test:
        _self_test(arguments.servers)
