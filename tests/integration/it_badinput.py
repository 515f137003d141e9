"""Bad input on weftd's NBD port and on the weft CLI: clear errors, no crash, no damage.

Raw sockets speak the NBD protocol by hand (docs: the NBD protocol spec, "fixed newstyle"):
garbage bytes, truncated handshakes, a bad option magic, an oversized option length, an
unknown option (NBD_REP_ERR_UNSUP, and the session goes on), GO to an unknown export, a
request with a bad magic, reads and writes past the end (EINVAL), an unknown command (EINVAL,
the session goes on), oversized reads and writes; libnbd with strict mode off sends
out-of-range requests. After every case the daemon is alive and a fresh client reads the
vDisk's known contents. Then the CLI: a missing vDisk (exit 1), bad sizes and names, usage
errors (exit 2), an unreachable admin address (exit 3).

Hang guard: every socket read gives up after SOCKET_TIMEOUT_S; a server that neither answers
nor closes by then fails the case.
"""

import errno
import random
import socket
import struct

import nbd

from weftlib import KIB, MIB, TestFailure, check, check_equal, free_port, log, nbd_handle
from weftlib import pattern_bytes, run_test

SOCKET_TIMEOUT_S = 30
VDISK_SIZE_BYTES = 64 * MIB

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
OPT_ABORT = 2
OPT_LIST = 3
OPT_GO = 7
REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERR_BIT = 1 << 31
REP_ERR_UNSUP = REP_ERR_BIT + 1
INFO_EXPORT = 0
CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3

# Known contents: the test checks them after every bad input.
KNOWN = [(0, pattern_bytes("known0", 64 * KIB)), (MIB - 100, pattern_bytes("known1", 300)),
         (VDISK_SIZE_BYTES - 4 * KIB, pattern_bytes("known2", 4 * KIB))]


class Closed(Exception):
    """The server closed the connection."""


class RawClient:
    """A hand-written NBD client over a plain socket (no structured replies)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
        self.size_bytes = None

    def close(self):
        self.sock.close()

    def recv_exact(self, count):
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except ConnectionResetError as error:
                raise Closed() from error
            except socket.timeout as error:
                raise TestFailure(f"server neither answered nor closed within "
                                  f"{SOCKET_TIMEOUT_S} s") from error
            if not chunk:
                raise Closed()
            data += chunk
        return data

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise Closed() from error

    def greeting(self):
        data = self.recv_exact(18)
        check_equal(data[:8], NBDMAGIC, "greeting magic")
        check_equal(struct.unpack(">Q", data[8:16])[0], IHAVEOPT, "greeting IHAVEOPT")
        flags = struct.unpack(">H", data[16:18])[0]
        check(flags & FLAG_FIXED_NEWSTYLE, f"server is not fixed newstyle (flags {flags:#x})")

    def handshake(self):
        self.greeting()
        self.send(struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))

    def send_option(self, option, data=b"", magic=IHAVEOPT, length=None):
        length = len(data) if length is None else length
        self.send(struct.pack(">QII", magic, option, length) + data)

    def option_reply(self, option):
        magic, reply_option, reply_type, length = struct.unpack(">QIII", self.recv_exact(20))
        check_equal(magic, OPTION_REPLY_MAGIC, "option reply magic")
        check_equal(reply_option, option, "option echoed in the reply")
        return reply_type, self.recv_exact(length)

    def go(self, name):
        """NBD_OPT_GO; returns the final reply type (REP_ACK on success)."""
        encoded = name.encode()
        self.send_option(OPT_GO, struct.pack(">I", len(encoded)) + encoded + struct.pack(">H", 0))
        while True:
            reply_type, data = self.option_reply(OPT_GO)
            if reply_type == REP_INFO and struct.unpack(">H", data[:2])[0] == INFO_EXPORT:
                self.size_bytes = struct.unpack(">Q", data[2:10])[0]
            if reply_type != REP_INFO:
                return reply_type

    def request(self, command, offset, length, payload=b"", flags=0, cookie=1,
                magic=REQUEST_MAGIC):
        self.send(struct.pack(">IHHQQI", magic, flags, command, cookie, offset, length) + payload)

    def reply(self, cookie=1, read_length=0):
        """A simple reply: (error, data); data follows only successful reads."""
        magic, error, reply_cookie = struct.unpack(">IIQ", self.recv_exact(16))
        check_equal(magic, SIMPLE_REPLY_MAGIC, "simple reply magic (no structured replies)")
        check_equal(reply_cookie, cookie, "reply cookie")
        data = self.recv_exact(read_length) if error == 0 and read_length else b""
        return error, data

    def expect_closed(self, what):
        """Reads until the server closes; anything it sends first is ignored (bounded)."""
        try:
            for _ in range(1024):
                self.recv_exact(1)
        except Closed:
            return
        raise TestFailure(f"{what}: the server kept the connection open and kept sending")


def ready_client(h):
    client = RawClient(h.weftd.nbd_port)
    client.handshake()
    check_equal(client.go("bad"), REP_ACK, "NBD_OPT_GO to the test vDisk")
    check_equal(client.size_bytes, VDISK_SIZE_BYTES, "size in NBD_INFO_EXPORT")
    return client


def check_healthy(h, context):
    """The daemon runs and a fresh libnbd client reads the known contents."""
    h.weftd.check_alive(context)
    handle = nbd_handle(h.weftd.uri("bad"))
    for offset, data in KNOWN:
        check(handle.pread(len(data), offset) == data,
              f"after {context}: contents at {offset} changed")
    handle.shutdown()


def check_read_works(client, cookie, context):
    offset, data = KNOWN[1]
    client.request(CMD_READ, offset, len(data), cookie=cookie)
    error, got = client.reply(cookie, len(data))
    check_equal(error, 0, f"{context}: error of a valid read on the same connection")
    check(got == data, f"{context}: a valid read on the same connection returned wrong data")


def case_garbage(h):
    rng = random.Random(1)
    for size in (4, 17, 300, 70000):
        client = RawClient(h.weftd.nbd_port)
        client.greeting()
        # The first 4 bytes are client flags; 0xff sets bits the protocol does not define.
        try:
            client.send(b"\xff" + rng.randbytes(size - 1))
            client.expect_closed(f"{size} garbage bytes")
        except Closed:
            pass  # The server hung up while we were still sending: also a close.
        finally:
            client.close()
    # Garbage before even reading the greeting.
    client = RawClient(h.weftd.nbd_port)
    try:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
        client.expect_closed("an HTTP request on the NBD port")
    except Closed:
        pass
    client.close()


def case_truncated(h):
    for prefix in (b"", b"\x00\x00", struct.pack(">I", 3) + struct.pack(">Q", IHAVEOPT)[:5],
                   struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT, OPT_GO, 20) + b"\0\0"):
        client = RawClient(h.weftd.nbd_port)
        client.greeting()
        client.send(prefix)
        client.close()  # Hang up mid-handshake.
    # Disconnect right after the greeting, many times in a row.
    for _ in range(50):
        RawClient(h.weftd.nbd_port).close()


def case_bad_option_magic(h):
    client = RawClient(h.weftd.nbd_port)
    client.handshake()
    client.send_option(OPT_GO, b"", magic=0x1122334455667788)
    client.expect_closed("an option with a bad magic")
    client.close()


def case_oversized_option(h):
    client = RawClient(h.weftd.nbd_port)
    client.handshake()
    client.send_option(OPT_GO, b"\0" * 8, length=0xFFFFFFF0)
    try:
        reply_type, _ = client.option_reply(OPT_GO)
        check(reply_type & REP_ERR_BIT, f"a 4 GiB option got reply type {reply_type:#x}")
    except Closed:
        pass  # Closing is the other acceptable answer.
    client.close()


def case_unknown_option(h):
    client = RawClient(h.weftd.nbd_port)
    client.handshake()
    client.send_option(0x7777, b"some payload")
    reply_type, _ = client.option_reply(0x7777)
    check_equal(reply_type, REP_ERR_UNSUP, "reply type to an unknown option")
    # LIST with data it must not have: an error, and the session still goes on.
    client.send_option(OPT_LIST, b"x" * 1000)
    reply_type, _ = client.option_reply(OPT_LIST)
    check(reply_type & REP_ERR_BIT, f"NBD_OPT_LIST with data got reply type {reply_type:#x}")
    # A proper LIST names the vDisk.
    client.send_option(OPT_LIST)
    names = []
    while True:
        reply_type, data = client.option_reply(OPT_LIST)
        if reply_type != REP_SERVER:
            break
        length = struct.unpack(">I", data[:4])[0]
        names.append(data[4:4 + length].decode())
    check_equal(reply_type, REP_ACK, "end of NBD_OPT_LIST")
    check("bad" in names, f"NBD_OPT_LIST does not name the vDisk: {names}")
    # GO to an export that does not exist: an error reply, and the session still goes on.
    reply_type = client.go("no-such-vdisk")
    check(reply_type & REP_ERR_BIT, f"GO to a missing export got reply type {reply_type:#x}")
    check_equal(client.go("bad"), REP_ACK, "GO after an unknown option and a failed GO")
    check_read_works(client, 5, "after the option errors")
    client.close()


def case_bad_request_magic(h):
    client = ready_client(h)
    client.request(CMD_READ, 0, 512, magic=0xDEADBEEF)
    client.expect_closed("a request with a bad magic")
    client.close()


def case_out_of_range(h):
    client = ready_client(h)
    size = VDISK_SIZE_BYTES
    cookie = 10
    for offset, length in ((size - 512, 1024), (size, 512), (1 << 63, 512), ((1 << 64) - 512, 1024)):
        client.request(CMD_READ, offset, length, cookie=cookie)
        error, _ = client.reply(cookie)
        check_equal(error, errno.EINVAL, f"error of READ {offset} +{length} past the end")
        cookie += 1
    client.request(CMD_WRITE, size - 512, 1024, payload=b"\xee" * 1024, cookie=cookie)
    error, _ = client.reply(cookie)
    check(error in (errno.EINVAL, errno.ENOSPC), f"WRITE past the end got error {error}")
    cookie += 1
    client.request(0x55, 0, 512, cookie=cookie)
    error, _ = client.reply(cookie)
    check_equal(error, errno.EINVAL, "error of an unknown command")
    cookie += 1
    client.request(CMD_READ, 0, 512, flags=0x8000, cookie=cookie)
    error, _ = client.reply(cookie)
    check_equal(error, errno.EINVAL, "error of a READ with an unknown flag")
    cookie += 1
    check_read_works(client, cookie, "after the out-of-range requests")
    client.request(CMD_FLUSH, 0, 0, cookie=cookie + 1)
    check_equal(client.reply(cookie + 1)[0], 0, "FLUSH after the errors")
    client.request(CMD_DISC, 0, 0)
    client.expect_closed("NBD_CMD_DISC")
    client.close()


def case_oversized_requests(h):
    client = ready_client(h)
    client.request(CMD_READ, 0, 0x7FFFFFFF, cookie=20)
    try:
        error, _ = client.reply(20)
        check(error != 0, "a 2 GiB READ succeeded")
        check_read_works(client, 21, "after an oversized READ")
    except Closed:
        pass  # Closing is also allowed for requests beyond the advertised maximum.
    client.close()

    client = ready_client(h)
    try:
        client.request(CMD_WRITE, 0, 40 * MIB, payload=b"\xab" * (40 * MIB), cookie=30)
        error, _ = client.reply(30)
        check(error != 0, "a 40 MiB WRITE (above the 32 MiB maximum) succeeded")
        check_read_works(client, 31, "after an oversized WRITE")
    except Closed:
        pass
    client.close()


def case_libnbd_not_strict(h):
    handle = nbd_handle(h.weftd.uri("bad"), strict=False)
    maximum = handle.get_block_size(nbd.SIZE_MAXIMUM)
    attempts = [
        ("pread past the end", lambda: handle.pread(1024, VDISK_SIZE_BYTES - 512)),
        ("pwrite past the end", lambda: handle.pwrite(b"\1" * 1024, VDISK_SIZE_BYTES - 512)),
        ("trim past the end", lambda: handle.trim(2 * MIB, VDISK_SIZE_BYTES - MIB)),
        ("zero past the end", lambda: handle.zero(2 * MIB, VDISK_SIZE_BYTES - MIB)),
        ("pread at the end", lambda: handle.pread(1, VDISK_SIZE_BYTES)),
    ]
    for what, attempt in attempts:
        try:
            attempt()
        except nbd.Error as error:
            check(error.errnum in (errno.EINVAL, errno.ENOSPC),
                  f"{what}: error {error.errnum} ({error}), expected EINVAL or ENOSPC")
        else:
            raise TestFailure(f"{what} succeeded")
    check(handle.pread(300, MIB - 100) == KNOWN[1][1], "libnbd read after errors")
    handle.shutdown()
    if maximum and maximum < (1 << 30):
        handle = nbd_handle(h.weftd.uri("bad"), strict=False)
        try:
            handle.pread(maximum * 2, 0)
        except nbd.Error:
            pass
        else:
            raise TestFailure(f"a read of twice the maximum block size {maximum} succeeded")
        try:
            handle.shutdown()
        except nbd.Error:
            pass  # The server may have dropped the connection.


def cli_errors(h):
    cli = h.cli
    result = cli.run("vdisk", "show", "no-such-vdisk", expect_rc=1)
    check(result.stderr.strip() or result.stdout.strip(), "vdisk show missing: no message")
    for size in ("banana", "-5G", "12Q", ""):
        result = cli.run("vdisk", "create", "badsize", "--size", size, expect_rc=None)
        check(result.returncode in (1, 2), f"vdisk create --size {size!r}: exit code "
              f"{result.returncode}, expected 2 (or 1)")
        check(result.stderr.strip(), f"vdisk create --size {size!r}: no message on stderr")
    check("badsize" not in cli.vdisk_names(), "a vDisk with a bad size was created")
    for name in ("bad/name", "", "x" * 5000):
        result = cli.run("vdisk", "create", name, "--size", "1M", expect_rc=None)
        check(result.returncode in (1, 2), f"vdisk create {name[:20]!r}: exit code "
              f"{result.returncode}, expected 1 or 2")
    result = cli.run("vdisk", "create", "bad", "--size", "1M", expect_rc=1)
    check(result.stderr.strip(), "creating an existing vDisk printed no message")
    cli.run("no-such-command", expect_rc=2)
    cli.run("vdisk", "create", expect_rc=2)
    cli.run("vdisk", "resize", "bad", expect_rc=2)
    cli.run("vdisk", "delete", "no-such-vdisk", expect_rc=1)
    unreachable = f"127.0.0.1:{free_port()}"
    result = h.cli.__class__(cli.binary, _AddressOnly(unreachable)).run("status", expect_rc=3)
    check(result.stderr.strip(), "unreachable admin: no message on stderr")


class _AddressOnly:
    """A stand-in daemon object that only has an admin address (for the unreachable case)."""

    def __init__(self, admin_address):
        self.admin_address = admin_address


def main(h):
    h.cli.create_vdisk("bad", f"{VDISK_SIZE_BYTES // MIB}M")
    handle = nbd_handle(h.weftd.uri("bad"))
    for offset, data in KNOWN:
        handle.pwrite(data, offset)
    handle.flush()
    handle.shutdown()
    check_healthy(h, "writing the known contents")
    for case in (case_garbage, case_truncated, case_bad_option_magic, case_oversized_option,
                 case_unknown_option, case_bad_request_magic, case_out_of_range,
                 case_oversized_requests, case_libnbd_not_strict):
        log(case.__name__)
        case(h)
        check_healthy(h, case.__name__)
    log("cli_errors")
    cli_errors(h)
    check_healthy(h, "the CLI errors")


if __name__ == "__main__":
    run_test(main, description=__doc__)
