"""libnbd's tools (nbdinfo, nbdcopy, nbdsh) and the python3-libnbd module against weftd.

Covers: nbdinfo size, block sizes and flags; nbdinfo --list shows every vDisk; nbdinfo --map
reports a fresh vDisk as one hole, data where it was written, holes again after trim;
nbdcopy of a random 256 MiB image into a vDisk and back out, identical sha256; scripted
requests: pwrite/pread (aligned, unaligned, FUA), trim, write-zeroes with and without NO_HOLE,
flush, block status (with and without REQ_ONE); multi-conn: two connections writing
different regions concurrently, a flush on one, reads on the other; and nbdsh itself.
"""

import json
import os

import nbd

from weftlib import KIB, MIB, allocated_bytes, check, check_equal, log, nbd_handle, nbdinfo_map
from weftlib import pattern_bytes, run, run_test, sha256_file, write_random_file

TOOLS_SIZE_BYTES = 512 * MIB
COPY_SIZE_BYTES = 256 * MIB


def test_nbdinfo(h):
    uri = h.weftd.uri("tools")
    info = json.loads(run(["nbdinfo", "--json", uri]).stdout)
    (export,) = info["exports"]
    check_equal(export["export-size"], TOOLS_SIZE_BYTES, "nbdinfo export-size")
    for key in ("block_size_minimum", "block_size_preferred", "block_size_maximum"):
        check(key in export, f"nbdinfo shows no {key} (NBD_INFO_BLOCK_SIZE missing): {export}")
    minimum = export["block_size_minimum"]
    preferred = export["block_size_preferred"]
    maximum = export["block_size_maximum"]
    check(1 <= minimum <= preferred <= maximum, f"block sizes out of order: {export}")
    check(minimum <= 4 * KIB and maximum >= MIB, f"block sizes unreasonable: {export}")
    for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
        check(export.get(flag) is True, f"nbdinfo: {flag} is not true: {export}")
    check(export.get("is_read_only") is False, f"export is read-only: {export}")
    check("base:allocation" in export.get("contexts", []), f"no base:allocation: {export}")

    listing = json.loads(run(["nbdinfo", "--list", "--json",
                              f"nbd://127.0.0.1:{h.weftd.nbd_port}/"]).stdout)
    names = sorted(e["export-name"] for e in listing["exports"])
    for expected in ("copy", "tools"):
        check(expected in names, f"nbdinfo --list does not show {expected!r}: {names}")
    sizes = {e["export-name"]: e.get("export-size") for e in listing["exports"]}
    check_equal(sizes["copy"], COPY_SIZE_BYTES, "nbdinfo --list size of 'copy'")


def test_map(h):
    uri = h.weftd.uri("tools")
    extents = nbdinfo_map(uri)
    check_equal(sum(e["length"] for e in extents), TOOLS_SIZE_BYTES, "total length of the map")
    check_equal(allocated_bytes(extents), 0, f"allocated bytes of a fresh vDisk (map {extents})")

    handle = nbd_handle(uri)
    handle.pwrite(pattern_bytes("map", 4 * MIB), 10 * MIB)
    handle.pwrite(pattern_bytes("map2", MIB), 100 * MIB)
    handle.flush()
    extents = nbdinfo_map(uri)
    check_equal(allocated_bytes(extents, 10 * MIB, 14 * MIB), 4 * MIB,
                f"data bytes in [10 MiB, 14 MiB) after a write (map {extents})")
    check_equal(allocated_bytes(extents, 100 * MIB, 101 * MIB), MIB,
                f"data bytes in [100 MiB, 101 MiB) after a write (map {extents})")
    # Allocation may be reported at vBlock (1 MiB) granularity, so look one vBlock away.
    check_equal(allocated_bytes(extents, 0, 9 * MIB), 0, f"data before the writes: {extents}")
    check_equal(allocated_bytes(extents, 15 * MIB, 99 * MIB), 0, f"data between: {extents}")
    check_equal(allocated_bytes(extents, 102 * MIB, TOOLS_SIZE_BYTES), 0,
                f"data after the writes: {extents}")

    handle.trim(4 * MIB, 10 * MIB)
    handle.trim(MIB, 100 * MIB)
    handle.flush()
    check(handle.pread(4 * MIB, 10 * MIB) == bytes(4 * MIB), "trimmed range does not read zero")
    handle.shutdown()
    extents = nbdinfo_map(uri)
    check_equal(allocated_bytes(extents), 0, f"allocated bytes after trimming all data: {extents}")


def test_nbdcopy(h):
    uri = h.weftd.uri("copy")
    source = h.path("copy-in.raw")
    write_random_file(source, COPY_SIZE_BYTES, seed=256)
    run(["nbdcopy", "--flush", source, uri])
    out_path = h.path("copy-out.raw")
    run(["nbdcopy", uri, out_path])
    check_equal(sha256_file(out_path), sha256_file(source), "sha256 after nbdcopy in and out")
    os.unlink(out_path)
    # A second copy with one connection and small requests (other request sizes and offsets).
    run(["nbdcopy", "--connections=1", "--request-size=65536", "--requests=4", uri, out_path])
    check_equal(sha256_file(out_path), sha256_file(source), "sha256 after a second copy out")
    os.unlink(out_path)
    os.unlink(source)


def collect_block_status(handle, length, offset, flags=0):
    """[(length, flags)] for base:allocation from one BLOCK_STATUS request."""
    result = []

    def extent(metacontext, extent_offset, entries, error):
        if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
            result.extend(zip(entries[0::2], entries[1::2]))

    handle.block_status(length, offset, extent, flags)
    return result


def test_requests(h):
    handle = nbd_handle(h.weftd.uri("tools"), meta_allocation=True)
    check(handle.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation not negotiated")
    check(handle.can_fua() and handle.can_flush() and handle.can_trim() and handle.can_zero(),
          "export lacks FUA, flush, trim or write-zeroes")
    base = 200 * MIB
    # Aligned, unaligned and FUA writes, each read back whole and by pieces.
    writes = [(base, 64 * KIB, 0), (base + 64 * KIB + 1, 4095, 0),
              (base + MIB - 700, 1400, nbd.CMD_FLAG_FUA), (base + 3 * MIB, 2 * MIB + 512, 0),
              (base + 6 * MIB + 3, 1, nbd.CMD_FLAG_FUA)]
    for index, (offset, length, flags) in enumerate(writes):
        handle.pwrite(pattern_bytes(f"req{index}", length), offset, flags)
    handle.flush()
    for index, (offset, length, _) in enumerate(writes):
        data = pattern_bytes(f"req{index}", length)
        check(handle.pread(length, offset) == data, f"read back of write {index} differs")
        half = length // 2
        check(handle.pread(length - half, offset + half) == data[half:],
              f"read of the second half of write {index} differs")
    check(handle.pread(1, base + 64 * KIB) == b"\0", "the byte between two writes is not zero")

    # Trim a whole vBlock of data: zeros, and block status says hole.
    region = base + 10 * MIB
    handle.pwrite(pattern_bytes("trim", 2 * MIB), region)
    handle.trim(MIB, region)
    check(handle.pread(MIB, region) == bytes(MIB), "trimmed vBlock does not read zero")
    check(handle.pread(MIB, region + MIB) == pattern_bytes("trim", 2 * MIB)[MIB:],
          "trim touched the next vBlock")
    status = collect_block_status(handle, MIB, region)
    check(status and all(flags & nbd.STATE_HOLE for _, flags in status)
          and sum(length for length, _ in status) >= MIB,
          f"block status of a trimmed vBlock is not all hole: {status}")

    # Write-zeroes without NO_HOLE may punch; with NO_HOLE the range stays allocated.
    zeroed = base + 20 * MIB
    handle.pwrite(pattern_bytes("zero", 3 * MIB), zeroed)
    handle.zero(MIB, zeroed)
    handle.zero(MIB, zeroed + MIB, nbd.CMD_FLAG_NO_HOLE)
    handle.zero(4 * KIB + 3, zeroed + 2 * MIB + 5, nbd.CMD_FLAG_FUA)
    check(handle.pread(2 * MIB, zeroed) == bytes(2 * MIB), "write-zeroes range is not zero")
    tail = pattern_bytes("zero", 3 * MIB)[2 * MIB:]
    expected_tail = tail[:5] + bytes(4 * KIB + 3) + tail[5 + 4 * KIB + 3:]
    check(handle.pread(MIB, zeroed + 2 * MIB) == expected_tail, "unaligned write-zeroes wrong")
    status = collect_block_status(handle, MIB, zeroed + MIB)
    check(status and not any(flags & nbd.STATE_HOLE for _, flags in status),
          f"NO_HOLE write-zeroes left a hole: {status}")
    # A fresh, never-written vBlock is a hole that reads as zero.
    fresh = collect_block_status(handle, MIB, base + 50 * MIB, nbd.CMD_FLAG_REQ_ONE)
    check_equal(len(fresh), 1, f"REQ_ONE block status returned {fresh}")
    check(fresh[0][1] & nbd.STATE_HOLE and fresh[0][1] & nbd.STATE_ZERO,
          f"fresh vBlock is not hole+zero: {fresh}")
    data_status = collect_block_status(handle, MIB, region + MIB)
    check(data_status and not data_status[0][1] & nbd.STATE_HOLE,
          f"written vBlock reported as hole: {data_status}")
    handle.flush()
    handle.shutdown()


def test_multi_conn(h):
    uri = h.weftd.uri("tools")
    first = nbd_handle(uri)
    second = nbd_handle(uri)
    check(first.can_multi_conn(), "export does not advertise multi-conn")
    base = 300 * MIB
    block = 4 * KIB
    count = 256
    buffers = {}
    cookies = []
    # Interleave queued writes on both connections: first writes even blocks, second odd.
    for index in range(count):
        handle = first if index % 2 == 0 else second
        buffers[index] = pattern_bytes(f"mc{index}", block)
        cookies.append((handle, handle.aio_pwrite(buffers[index], base + index * block)))
    for handle in (first, second):
        while handle.aio_in_flight() > 0:
            handle.poll(-1)
    for handle, cookie in cookies:
        # Raises nbd.Error when the server failed the write.
        check(handle.aio_command_completed(cookie), f"write {cookie} did not complete")
    first.flush()
    for index in range(count):
        reader = second if index % 2 == 0 else first
        check(reader.pread(block, base + index * block) == buffers[index],
              f"block {index} written on one connection reads wrong on the other")
    # A write on the second, flushed on the first, is seen by a third connection.
    second.pwrite(b"\xa5" * MIB, base + 10 * MIB)
    first.flush()
    third = nbd_handle(uri)
    check(third.pread(MIB, base + 10 * MIB) == b"\xa5" * MIB, "third connection misses a write")
    for handle in (first, second, third):
        handle.shutdown()


def test_nbdsh(h):
    script = ("data = bytes(range(256)) * 16\n"
              "h.pwrite(data, 400 * 1024 * 1024 + 123)\n"
              "h.flush()\n"
              "assert h.pread(4096, 400 * 1024 * 1024 + 123) == data\n"
              "assert h.get_size() == %d\n"
              "print('nbdsh-ok')\n" % TOOLS_SIZE_BYTES)
    result = run(["nbdsh", "-u", h.weftd.uri("tools"), "-c", script])
    check("nbdsh-ok" in result.stdout, f"nbdsh script did not finish: {result.stdout}")


def main(h):
    h.cli.create_vdisk("tools", "512M")
    h.cli.create_vdisk("copy", "256M")
    for step in (test_nbdinfo, test_map, test_nbdcopy, test_requests, test_multi_conn,
                 test_nbdsh):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)


if __name__ == "__main__":
    run_test(main, description=__doc__)
