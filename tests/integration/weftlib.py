"""Harness for weft's integration tests: a real weftd, the real weft CLI and real NBD clients.

Every test script is run by ctest as
    /usr/bin/python3 tests/integration/it_NAME.py --weftd PATH --weft PATH
and uses `run_test(main)`, which gives `main` a Harness: a temp dir, weftd started on free
ports with a modest sparse disk under that dir, the CLI, and helpers for the clients. On a
failure the harness prints what failed, the daemon's log and the command that reproduces the
run (with --keep, which keeps the temp dir); at exit it kills every process it started, by PID.

Only the standard library and python3-libnbd's `nbd` module (run with /usr/bin/python3: the
pyenv python3 that comes first on PATH does not have it).
"""

import argparse
import atexit
import ctypes
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# A started daemon must answer within this long; a generous bound that only catches hangs.
DAEMON_START_TIMEOUT_S = 60
# SIGTERM must end weftd within this long, or the test fails (and the daemon is killed).
DAEMON_STOP_TIMEOUT_S = 60
# Default bound for one client command; only a hang guard.
COMMAND_TIMEOUT_S = 300
# Lines of the daemon log printed on failure.
LOG_TAIL_LINES = 200

# Child processes (and nbdsh, which runs `python3 -mnbd`) must find the system python3 with
# the nbd module, not a pyenv shim that comes first on PATH.
CHILD_ENV = dict(os.environ)
CHILD_ENV["PATH"] = "/usr/bin:/usr/sbin:/bin:/sbin:" + os.environ.get("PATH", "")

_started_pids = set()
# Admin API requests go straight to 127.0.0.1, never through an http_proxy from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TestFailure(Exception):
    """An expectation of the test did not hold (as opposed to a bug in the test)."""


def check(condition, message):
    """Fails the test with `message` unless `condition` holds."""
    if not condition:
        raise TestFailure(message)


def check_equal(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed by the peer")
        data += chunk
    return data


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_group(pid):
    """SIGKILL to the process group a started child leads (it called setpgrp), so helpers it
    forked die with it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_leftovers():
    for pid in list(_started_pids):
        _kill_group(pid)
    _started_pids.clear()


atexit.register(_kill_leftovers)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies, even by SIGKILL (as when
    ctest's timeout kills it), so no weftd outlives its test."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    os.setpgrp()


def run(argv, *, timeout_s=COMMAND_TIMEOUT_S, check_rc=True, input_bytes=None, cwd=None):
    """Runs a client command; returns the CompletedProcess (stdout/stderr as text).
    With check_rc, a non-zero exit fails the test with the command and its output."""
    argv = [str(a) for a in argv]
    log("$ " + shlex.join(argv))
    try:
        result = subprocess.run(argv, input=input_bytes, capture_output=True, timeout=timeout_s,
                                env=CHILD_ENV, cwd=cwd)
    except subprocess.TimeoutExpired as error:
        raise TestFailure(f"command timed out after {timeout_s} s: {shlex.join(argv)}") from error
    result.stdout = result.stdout.decode(errors="replace")
    result.stderr = result.stderr.decode(errors="replace")
    if check_rc and result.returncode != 0:
        raise TestFailure(f"command failed with exit code {result.returncode}: "
                          f"{shlex.join(argv)}\n--- stdout\n{result.stdout[-4000:]}"
                          f"\n--- stderr\n{result.stderr[-4000:]}")
    return result


def spawn(argv, *, cwd=None, output_path=None):
    """Starts a client in the background (killed at exit if still running); stdout and
    stderr go to output_path (or /dev/null). Returns the Popen."""
    argv = [str(a) for a in argv]
    log("$ " + shlex.join(argv) + " &")
    with open(output_path or os.devnull, "ab") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=CHILD_ENV, cwd=cwd,
                                   preexec_fn=_die_with_parent)
    _started_pids.add(process.pid)
    return process


def wait_process(process, timeout_s=COMMAND_TIMEOUT_S):
    """Waits for a spawned process; returns its exit code."""
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        process.kill()
        raise TestFailure(f"pid {process.pid} did not exit within {timeout_s} s") from error
    _started_pids.discard(process.pid)
    return code


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def write_random_file(path, size_bytes, seed):
    """A file of deterministic pseudo-random bytes (reproducible from `seed`)."""
    block = hashlib.sha256(str(seed).encode()).digest()
    # Expand 32 bytes into 1 MiB of distinct data, then vary each MiB by its index.
    base = b"".join(hashlib.sha256(block + i.to_bytes(4, "little")).digest()
                    for i in range(MIB // 32))
    with open(path, "wb") as file:
        written = 0
        index = 0
        while written < size_bytes:
            prefix = index.to_bytes(8, "little") + seed.to_bytes(8, "little")
            chunk = prefix + base[len(prefix):]
            chunk = chunk[:size_bytes - written]
            file.write(chunk)
            written += len(chunk)
            index += 1


def poll_until(condition, timeout_s, what, interval_s=0.05):
    """Calls condition() until it returns a truthy value, and returns that value. Fails the
    test naming `what` after timeout_s: a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def fio_job_report(output_path, context):
    """The single job of a fio --output-format=json report; fails the test if fio reported
    an error for it."""
    try:
        with open(output_path) as file:
            jobs = json.load(file)["jobs"]
    except (OSError, ValueError, KeyError) as error:
        raise TestFailure(f"{context}: no fio JSON report in {output_path} ({error})") from error
    check_equal(len(jobs), 1, f"{context}: number of jobs in fio's report")
    check_equal(jobs[0]["error"], 0, f"{context}: fio's error")
    return jobs[0]


def pattern_bytes(seed, size_bytes):
    """Deterministic bytes for in-memory writes (every 32-byte piece differs)."""
    out = bytearray()
    counter = 0
    while len(out) < size_bytes:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size_bytes])


class Weftd:
    """One weftd process on a data dir, with its disk file and ports. Restarting keeps the
    data dir, the disk and the ports, so URIs stay valid across restarts."""

    def __init__(self, binary, work_dir, *, disk_size="2G", log_level="info", name="weftd",
                 extra_args=()):
        self.binary = binary
        # More weftd flags (e.g. ["--oplog-size", "32M"]); a list, so a test may change it
        # between restarts.
        self.extra_args = list(extra_args)
        self.name = name
        self.data_dir = os.path.join(work_dir, f"{name}-data")
        self.disk_path = os.path.join(work_dir, f"{name}-disk0.img")
        self.disk_size = disk_size
        self.log_level = log_level
        self.log_path = os.path.join(work_dir, f"{name}.log")
        self.nbd_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.nbd_port:
            self.admin_port = free_port()
        self.process = None
        self.starts = 0

    @property
    def admin_address(self):
        return f"127.0.0.1:{self.admin_port}"

    def uri(self, export_name):
        return f"nbd://127.0.0.1:{self.nbd_port}/{export_name}"

    def argv(self):
        return [self.binary, "--data-dir", self.data_dir,
                "--disk", f"{self.disk_path}:{self.disk_size}",
                "--listen-nbd", f"127.0.0.1:{self.nbd_port}",
                "--listen-admin", self.admin_address,
                "--log-level", self.log_level, *self.extra_args]

    def start(self):
        """Starts weftd and waits until /healthz answers 200 and the NBD port accepts."""
        self.launch()
        self.wait_ready()

    def launch(self):
        """Starts weftd without waiting for it (cluster nodes that need each other to start are
        all launched first, then waited for with wait_ready)."""
        check(self.process is None, f"{self.name} already running")
        argv = self.argv()
        self.starts += 1
        log(f"starting {self.name} (start #{self.starts}): {shlex.join(argv)}")
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n===== start #{self.starts}: {shlex.join(argv)}\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=CHILD_ENV,
                                            preexec_fn=_die_with_parent)
        _started_pids.add(self.process.pid)

    def wait_ready(self):
        """Waits until the launched weftd answers /healthz with 200 and its NBD port accepts."""
        deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
        while True:
            code = self.process.poll()
            if code is not None:
                self._forget()
                raise TestFailure(f"{self.name} exited with code {code} during startup")
            if self._healthy() and self._nbd_accepts():
                log(f"{self.name} is up (pid {self.process.pid}, nbd {self.nbd_port}, "
                    f"admin {self.admin_port})")
                return
            if time.monotonic() > deadline:
                raise TestFailure(f"{self.name} did not become ready within "
                                  f"{DAEMON_START_TIMEOUT_S} s")
            time.sleep(0.1)

    def _healthy(self):
        try:
            with _http.open(f"http://{self.admin_address}/healthz", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def _nbd_accepts(self):
        """A polite probe: greeting, client flags, NBD_OPT_ABORT, its ACK, close (instead of
        a reset that the daemon would log as a broken handshake)."""
        greeted = False
        try:
            with socket.create_connection(("127.0.0.1", self.nbd_port), timeout=2) as sock:
                sock.settimeout(5)
                greeted = _recv_exact(sock, 18)[:8] == b"NBDMAGIC"
                if greeted:
                    sock.sendall(struct.pack(">I", 3))  # C_FIXED_NEWSTYLE | C_NO_ZEROES.
                    sock.sendall(struct.pack(">QII", 0x49484156454F5054, 2, 0))  # OPT_ABORT.
                    _recv_exact(sock, 20)  # Its ACK.
        except OSError:
            pass  # The spec lets a server close instead of acknowledging the abort.
        return greeted

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def check_alive(self, context):
        if not self.alive():
            code = None if self.process is None else self.process.returncode
            raise TestFailure(f"{self.name} is not running after {context} (exit code {code})")

    def stop(self):
        """SIGTERM; requires a clean exit (code 0) within DAEMON_STOP_TIMEOUT_S."""
        self.check_alive("the test (before SIGTERM)")
        log(f"stopping {self.name} with SIGTERM")
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=DAEMON_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            self.kill()
            raise TestFailure(f"{self.name} did not exit within {DAEMON_STOP_TIMEOUT_S} s of "
                              "SIGTERM") from error
        self._forget()
        check(code == 0, f"{self.name} exited with code {code} after SIGTERM (expected 0)")

    def kill(self):
        """SIGKILL, as a crash: nothing is flushed or closed."""
        if self.process is None:
            return
        log(f"killing {self.name} with SIGKILL")
        _kill_group(self.process.pid)
        self.process.wait()
        self._forget()

    def _forget(self):
        _started_pids.discard(self.process.pid)
        self.process = None

    def admin_get(self, path):
        """GET on the admin API; returns the parsed JSON body."""
        url = f"http://{self.admin_address}{path}"
        with _http.open(url, timeout=30) as response:
            return json.loads(response.read().decode())

    def vdisk_stats(self, name):
        """A vDisk's counter groups ({"io": {...}, "oplog": {...}, ...}) from the admin API."""
        return self.admin_get("/api/v1/vdisks/" + urllib.parse.quote(name, safe="")).get(
            "stats", {})

    def cache_stats(self):
        """The node's Unified Cache counters from the admin API."""
        return self.admin_get("/api/v1/node").get("cache", {})

    def wait_oplog_drained(self, name, timeout_s=60):
        """Waits until the vDisk's OpLog holds no undrained data (stats.oplog.index_bytes is 0,
        or the vDisk has no OpLog)."""
        def drained():
            return self.vdisk_stats(name).get("oplog", {}).get("index_bytes", 0) == 0
        poll_until(drained, timeout_s, f"the OpLog of vdisk {name} to drain", interval_s=0.2)

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            with open(self.log_path, "r", errors="replace") as file:
                return "".join(file.readlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Cli:
    """The weft CLI pointed at one daemon's admin API."""

    def __init__(self, binary, daemon):
        self.binary = binary
        self.daemon = daemon

    def run(self, *args, expect_rc=0, json_output=False):
        """Runs `weft --admin ADDR [--json] ARGS`; fails the test unless the exit code is
        expect_rc (None: any). Returns the CompletedProcess."""
        argv = [self.binary, "--admin", self.daemon.admin_address]
        if json_output:
            argv.append("--json")
        argv += list(args)
        result = run(argv, check_rc=False)
        if expect_rc is not None and result.returncode != expect_rc:
            raise TestFailure(f"weft {' '.join(map(str, args))}: exit code {result.returncode}, "
                              f"expected {expect_rc}\n--- stdout\n{result.stdout}\n--- stderr\n"
                              f"{result.stderr}")
        return result

    def json(self, *args):
        """Runs the command with --json and returns the parsed output."""
        result = self.run(*args, json_output=True)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise TestFailure(f"weft --json {' '.join(args)} printed invalid JSON ({error}):\n"
                              f"{result.stdout}") from error

    def create_vdisk(self, name, size, container=None):
        args = ["vdisk", "create", name, "--size", size]
        if container:
            args += ["--container", container]
        self.run(*args)

    def vdisks(self):
        """The vDisk objects of `weft --json vdisk list` (an object holding a list under
        "vdisks", or the list itself)."""
        return _list_of(self.json("vdisk", "list"), "vdisks")

    def vdisk_names(self):
        return sorted(v["name"] for v in self.vdisks())

    def container_names(self):
        return sorted(c["name"] for c in _list_of(self.json("container", "list"), "containers"))


def _list_of(parsed, key):
    if isinstance(parsed, dict) and key in parsed:
        parsed = parsed[key]
    if not isinstance(parsed, list):
        raise TestFailure(f"expected a JSON list (or an object with {key!r}), got: {parsed!r}")
    return parsed


def nbd_handle(uri, *, strict=True, meta_allocation=False):
    """A connected python3-libnbd handle."""
    import nbd  # Only in /usr/bin/python3 (python3-libnbd).
    handle = nbd.NBD()
    if meta_allocation:
        handle.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        handle.set_strict_mode(0)
    handle.connect_uri(uri)
    return handle


def export_size(uri):
    handle = nbd_handle(uri)
    try:
        return handle.get_size()
    finally:
        handle.shutdown()


def export_sha256(uri, work_dir, name="export.raw"):
    """sha256 of a whole export, copied out with qemu-img convert."""
    path = os.path.join(work_dir, name)
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, path])
    digest = sha256_file(path)
    os.unlink(path)
    return digest


def nbdinfo_map(uri):
    """nbdinfo --map --json: [{offset, length, type, description}]; type bit 1 = hole."""
    return json.loads(run(["nbdinfo", "--map", "--json", uri]).stdout)


def allocated_bytes(extents, start=0, end=None):
    """Bytes in [start, end) that the map reports as data (not a hole)."""
    total = 0
    for extent in extents:
        low = max(extent["offset"], start)
        high = extent["offset"] + extent["length"]
        if end is not None:
            high = min(high, end)
        if high > low and not extent["type"] & 1:
            total += high - low
    return total


class Harness:
    """What a test's main gets: work_dir, weftd (started), cli, and the binaries' paths."""

    def __init__(self, args, work_dir, weftd_args=()):
        self.args = args
        self.work_dir = work_dir
        self.daemons = []
        self.weftd = self.new_daemon(extra_args=weftd_args)
        self.cli = Cli(args.weft, self.weftd)

    def new_daemon(self, **kwargs):
        daemon = Weftd(self.args.weftd, self.work_dir, **kwargs)
        self.daemons.append(daemon)
        return daemon

    def path(self, name):
        return os.path.join(self.work_dir, name)


def run_test(main, *, description="", weftd_args=()):
    """Parses --weftd/--weft/--keep, builds a Harness in a fresh temp dir, starts weftd (with
    weftd_args added to its flags), runs main(harness) and exits 0 on success, 1 on failure
    (printing logs and how to re-run)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--weftd", required=True, help="path of the weftd binary")
    parser.add_argument("--weft", required=True, help="path of the weft CLI binary")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--work-dir-parent", default=None,
                        help="where to create the temp dir (default: $TMPDIR or /tmp)")
    args = parser.parse_args()
    for binary in (args.weftd, args.weft):
        if not os.access(binary, os.X_OK):
            print(f"not an executable: {binary}", file=sys.stderr)
            sys.exit(1)
    test_name = os.path.basename(sys.argv[0])
    work_dir = tempfile.mkdtemp(prefix=f"weft-{os.path.splitext(test_name)[0]}-",
                                dir=args.work_dir_parent)
    rerun = shlex.join(["/usr/bin/python3", os.path.abspath(sys.argv[0]), "--weftd",
                        os.path.abspath(args.weftd), "--weft", os.path.abspath(args.weft),
                        "--keep"])
    log(f"{test_name}: work dir {work_dir}")
    harness = None
    failed = True
    try:
        harness = Harness(args, work_dir, weftd_args)
        harness.weftd.start()
        main(harness)
        for daemon in harness.daemons:
            if daemon.alive():
                daemon.stop()
        failed = False
    except TestFailure as error:
        print(f"\nFAILED: {error}", file=sys.stderr)
    except Exception:  # A bug in the test or an unexpected client error: still a failure.
        print("\nFAILED with an exception:", file=sys.stderr)
        traceback.print_exc()
    if failed:
        for daemon in (harness.daemons if harness else []):
            print(f"\n--- last {LOG_TAIL_LINES} lines of {daemon.log_path}", file=sys.stderr)
            print(daemon.log_tail(), file=sys.stderr)
        print(f"\nreproduce with: {rerun}", file=sys.stderr)
    _kill_leftovers()
    if args.keep:
        log(f"work dir kept: {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    log(f"{test_name}: {'FAILED' if failed else 'PASSED'}")
    sys.exit(1 if failed else 0)


# ---- Cluster tests (it_cluster*.py): admin API calls with any method, metadata keys, crc32c.

def admin_request(address, method, path, body=None, timeout_s=30):
    """One admin API call to HOST:PORT. Returns (HTTP status, parsed JSON body or None); an
    error answer (4xx/5xx) is returned, not raised. `body` is sent as JSON when given."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _http.open(request, timeout=timeout_s) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        try:
            return error.code, json.loads(text)
        except json.JSONDecodeError:
            return error.code, {"error": {"code": "NotJson", "message": text}}


def metadata_path(key):
    """The admin API path of a metadata row: every byte of the key but unreserved ones encoded."""
    return "/api/v1/metadata/" + urllib.parse.quote(key, safe="")


def _crc32c_table():
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """The standard CRC-32C (Castagnoli) of `data`, as src/base/crc32c.h computes it:
    crc32c(b"123456789") == 0xE3069283."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- Replicated clusters (it_replication*.py): ZooKeeper + N weftd, vDisk owners, takeover.

def vdisk_path(name):
    return "/api/v1/vdisks/" + urllib.parse.quote(name, safe="")


class ClusterNode:
    """One weftd of a ZooKeeper cluster: its ports (the RPC port is chosen here and written into
    the cluster configuration), its flags and a CLI for it."""

    def __init__(self, harness, node_id, zk_connect, *, session_ms, zk_root="/weft",
                 disk_size="1G", extra_args=()):
        self.node_id = node_id
        self.daemon = harness.new_daemon(name=f"node{node_id}", disk_size=disk_size)
        self.rpc_port = free_port()
        while self.rpc_port in (self.daemon.admin_port, self.daemon.nbd_port):
            self.rpc_port = free_port()
        self.daemon.extra_args = ["--node-id", str(node_id), "--zookeeper", zk_connect,
                                  "--zookeeper-root", zk_root,
                                  "--zookeeper-session-timeout-ms", str(session_ms),
                                  *extra_args]
        self.cli = Cli(harness.args.weft, self.daemon)

    def spec(self):
        """The --node argument of `weft cluster create`: ID=RPC_ADDRESS,ADMIN_ADDRESS."""
        return f"{self.node_id}=127.0.0.1:{self.rpc_port},{self.daemon.admin_address}"

    def uri(self, vdisk):
        return self.daemon.uri(vdisk)

    def vdisk(self, name):
        """(HTTP status, body) of GET /api/v1/vdisks/NAME on this node (200 only on the owner)."""
        return admin_request(self.daemon.admin_address, "GET", vdisk_path(name), timeout_s=10)

    def owns(self, name):
        """Whether this node answers 200 for the vDisk (a node that is down or paused does not)."""
        try:
            status, _ = admin_request(self.daemon.admin_address, "GET", vdisk_path(name),
                                      timeout_s=2)
        except OSError:
            return False
        return status == 200

    def stats(self, name):
        """The vDisk's stats groups from this node, which must own it."""
        status, body = self.vdisk(name)
        check_equal(status, 200, f"GET vdisk {name} on node {self.node_id} ({body})")
        return body.get("stats", {})

    def replication(self, name):
        stats = self.stats(name)
        check("replication" in stats, f"vdisk {name} on node {self.node_id} has no replication "
              f"counters: {stats}")
        return stats["replication"]

    def pause(self):
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung node)."""
        log(f"pausing node {self.node_id} with SIGSTOP")
        os.kill(self.daemon.process.pid, signal.SIGSTOP)

    def resume(self):
        log(f"resuming node {self.node_id} with SIGCONT")
        os.kill(self.daemon.process.pid, signal.SIGCONT)


class Cluster:
    """ZooKeeper (a zk_server.ZkServer, started by the caller) and weftd nodes with ids 1..N."""

    def __init__(self, harness, zk, node_count, *, session_ms, name="it", redundancy_factor=None,
                 extra_args=()):
        self.harness = harness
        self.zk = zk
        self.name = name
        self.redundancy_factor = redundancy_factor
        self.nodes = {i: ClusterNode(harness, i, zk.connect_string, session_ms=session_ms,
                                     extra_args=extra_args)
                      for i in range(1, node_count + 1)}

    def node(self, node_id):
        return self.nodes[node_id]

    def create(self):
        """`weft cluster create` with every node, then starts them one after the other (not from
        threads: a daemon gets SIGKILL when the thread that started it ends) and waits until
        every node sees every other live."""
        argv = [self.harness.args.weft, "cluster", "create", "--zookeeper",
                self.zk.connect_string, "--zookeeper-root", "/weft", "--name", self.name]
        if self.redundancy_factor is not None:
            argv += ["--redundancy-factor", str(self.redundancy_factor)]
        for node in self.nodes.values():
            argv += ["--node", node.spec()]
        run(argv)
        self.start(list(self.nodes))
        self.wait_live(list(self.nodes))

    def start(self, node_ids):
        """Launches the nodes' weftd, then waits for each: a node's start needs a quorum of the
        metadata ring, so nodes that form it start together."""
        for node_id in node_ids:
            self.nodes[node_id].daemon.launch()
        for node_id in node_ids:
            self.nodes[node_id].daemon.wait_ready()

    def running(self):
        """Nodes whose weftd process runs (paused ones included)."""
        return [node for node in self.nodes.values() if node.daemon.alive()]

    def wait_live(self, expected_ids, timeout_s=60):
        """Until every running node sees exactly `expected_ids` as live (a killed node drops out
        once its ZooKeeper session expires; a restarted one joins)."""
        def settled():
            for node in self.running():
                view = node.cli.json("cluster", "show")
                live = sorted(n["node_id"] for n in view["nodes"] if n["live"])
                if live != sorted(expected_ids):
                    return False
            return True
        poll_until(settled, timeout_s, f"every running node to see nodes {sorted(expected_ids)} "
                   "live", interval_s=0.2)

    def owners(self, vdisk, candidates=None):
        """Ids of the nodes (running, or the given ones) that answer 200 for the vDisk."""
        nodes = candidates if candidates is not None else self.running()
        return [node.node_id for node in nodes if node.owns(vdisk)]

    def wait_owner(self, vdisk, candidates, timeout_s=60):
        """Polls `candidates` until one answers 200 for the vDisk; returns (node, seconds
        waited). Two owners at once fail the test (split brain)."""
        started = time.monotonic()
        found = []

        def one_owner():
            found[:] = self.owners(vdisk, candidates)
            check(len(found) <= 1, f"vdisk {vdisk} has two owners at once: nodes {found}")
            return len(found) == 1
        poll_until(one_owner, timeout_s, f"a node among {[n.node_id for n in candidates]} to "
                   f"take vdisk {vdisk} over", interval_s=0.1)
        return self.nodes[found[0]], time.monotonic() - started

    def stop_all(self):
        """SIGTERM to every running node (resumed first if paused), clean exits required."""
        for node in self.running():
            os.kill(node.daemon.process.pid, signal.SIGCONT)
            node.daemon.stop()


def nbd_refused(uri):
    """Whether an NBD client is refused the export at `uri` (libnbd's connect fails)."""
    import nbd  # Only in /usr/bin/python3 (python3-libnbd).
    try:
        handle = nbd_handle(uri)
    except nbd.Error:
        return True
    handle.shutdown()
    return False
