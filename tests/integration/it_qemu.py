"""qemu-img and qemu-io against weftd's NBD exports.

Covers: qemu-img info (size, format); qemu-img convert of raw and qcow2 images into a vDisk and
back out, byte-identical, and qemu-img compare; qemu-io write -P / read -P at aligned and
unaligned offsets and sizes (512 B .. 2 MiB + 512 B), across 1 MiB vBlock boundaries and at the
last bytes of the disk, with the bytes around each write still zero, partial overwrites inside
written ranges, everything read back over a fresh connection; reads past the end fail cleanly
and leave the daemon serving.
"""

import json
import os

from weftlib import KIB, MIB, check, check_equal, log, run, run_test, sha256_file
from weftlib import write_random_file

VDISK_SIZE_BYTES = 256 * MIB
# Bytes read on each side of a written range to check that nothing else was touched.
GUARD_BYTES = 4 * KIB


def io_cases(size_bytes):
    """(offset, length) ranges, non-overlapping, each written with its own pattern byte."""
    return [
        (0, 512),
        (3 * 512, 512),
        (5 * 4 * KIB, 4 * KIB),
        (12345, 17),
        (3 * 64 * KIB, 64 * KIB),
        (MIB - 512, 1 * KIB),  # Crosses the first vBlock boundary by 512 B each side.
        (2 * MIB - 4 * KIB, 8 * KIB),
        (3 * MIB - 100, 64 * KIB),  # Unaligned, crosses a boundary.
        (5 * MIB + 7, MIB + 512),  # Unaligned start and length, spans a vBlock.
        (8 * MIB - 32 * KIB, 2 * MIB + 512),  # Crosses two vBlock boundaries.
        (16 * MIB, MIB),  # Exactly one vBlock.
        (37 * MIB + 4 * KIB, MIB + 512),
        (size_bytes - 2 * MIB - 512, MIB + 512),
        (size_bytes - 512, 512),  # The last sector.
    ]


def qemu_io(uri, commands, check_rc=True):
    argv = ["qemu-io", "-f", "raw"]
    for command in commands:
        argv += ["-c", command]
    argv.append(uri)
    result = run(argv, check_rc=check_rc)
    output = result.stdout + result.stderr
    # qemu-io exits 0 after some failed commands, but it always prints "failed".
    if check_rc:
        check("failed" not in output.lower(), f"qemu-io reported a failure:\n{output}")
    return result


def pattern_of(index):
    return 0x11 + (index * 37) % 0xE0  # Never 0, distinct for the cases above.


def test_info(h, uri):
    info = json.loads(run(["qemu-img", "info", "--output=json", uri]).stdout)
    check_equal(info["virtual-size"], VDISK_SIZE_BYTES, "qemu-img info virtual-size")
    check_equal(info["format"], "raw", "qemu-img info format")


def test_pattern_io(h, uri):
    cases = io_cases(VDISK_SIZE_BYTES)
    ordered = sorted(cases)
    for (offset_a, length_a), (offset_b, _) in zip(ordered, ordered[1:]):
        assert offset_a + length_a <= offset_b, "test cases overlap"
    qemu_io(uri, [f"write -P {pattern_of(i)} {off} {length}"
                  for i, (off, length) in enumerate(cases)])
    # Fresh connection: every range reads back, and the bytes around it are still zero.
    reads = [f"read -P {pattern_of(i)} {off} {length}" for i, (off, length) in enumerate(cases)]
    for index, (offset, length) in enumerate(ordered):
        previous_end = ordered[index - 1][0] + ordered[index - 1][1] if index else 0
        next_start = ordered[index + 1][0] if index + 1 < len(ordered) else VDISK_SIZE_BYTES
        before = min(GUARD_BYTES, offset - previous_end)
        after = min(GUARD_BYTES, next_start - (offset + length))
        if before > 0:
            reads.append(f"read -P 0 {offset - before} {before}")
        if after > 0:
            reads.append(f"read -P 0 {offset + length} {after}")
    qemu_io(uri, reads)

    # Overwrite the middle of three ranges with a new pattern (unaligned, inside one vBlock
    # and across one), and check the old bytes on both sides survive.
    overwrites = [(5 * MIB + 7, MIB + 512, 4 * KIB + 3, 777),
                  (8 * MIB - 32 * KIB, 2 * MIB + 512, 32 * KIB - 512, 64 * KIB),
                  (16 * MIB, MIB, 1, MIB - 2)]
    commands = [f"write -P 0xee {base + skip} {length}" for base, _, skip, length in overwrites]
    qemu_io(uri, commands)
    reads = []
    for base, total, skip, length in overwrites:
        index = cases.index((base, total))
        reads.append(f"read -P {pattern_of(index)} {base} {skip}")
        reads.append(f"read -P 0xee {base + skip} {length}")
        reads.append(f"read -P {pattern_of(index)} {base + skip + length} "
                     f"{total - skip - length}")
    qemu_io(uri, reads)


def test_read_past_end(h, uri):
    for command in (f"read 0 {VDISK_SIZE_BYTES + 512}", f"read {VDISK_SIZE_BYTES} 512",
                    f"read {VDISK_SIZE_BYTES - 512} 1024",
                    f"write -P 1 {VDISK_SIZE_BYTES - 512} 1024"):
        result = qemu_io(uri, [command], check_rc=False)
        output = result.stdout + result.stderr
        check(result.returncode != 0 or "failed" in output.lower() or "error" in output.lower(),
              f"qemu-io {command!r} past the end succeeded:\n{output}")
        h.weftd.check_alive(f"qemu-io {command!r}")
    # The last sector written by test_pattern_io is intact after the failed write past the end.
    last_index = io_cases(VDISK_SIZE_BYTES).index((VDISK_SIZE_BYTES - 512, 512))
    qemu_io(uri, [f"read -P {pattern_of(last_index)} {VDISK_SIZE_BYTES - 512} 512"])


def test_convert(h):
    image_bytes = 48 * MIB
    source = h.path("source.raw")
    write_random_file(source, image_bytes, seed=1)
    # Punch zero runs into the source so convert's zero detection and holes get exercised.
    with open(source, "r+b") as file:
        for offset in (0, 7 * MIB + 4 * KIB, 20 * MIB, image_bytes - MIB):
            file.seek(offset)
            file.write(bytes(MIB))
    h.cli.create_vdisk("convert-raw", "48M")
    uri = h.weftd.uri("convert-raw")
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, uri])
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", source, uri])
    out_path = h.path("out.raw")
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out_path])
    check_equal(sha256_file(out_path), sha256_file(source), "sha256 of the raw image round trip")
    os.unlink(out_path)

    # A qcow2 image converts into a vDisk as its raw contents.
    qcow2 = h.path("source.qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", source, qcow2])
    h.cli.create_vdisk("convert-qcow2", "48M")
    uri2 = h.weftd.uri("convert-qcow2")
    run(["qemu-img", "convert", "-n", "-f", "qcow2", "-O", "raw", qcow2, uri2])
    run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow2, uri2])
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri2, out_path])
    check_equal(sha256_file(out_path), sha256_file(source), "sha256 of the qcow2 round trip")
    # A changed byte is noticed by compare (the check above is not vacuous).
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x42 100 1", uri2])
    differ = run(["qemu-img", "compare", "-f", "raw", "-F", "raw", source, uri2], check_rc=False)
    check_equal(differ.returncode, 1, "qemu-img compare exit code after changing one byte")
    for path in (source, qcow2, out_path):
        os.unlink(path)


def main(h):
    h.cli.create_vdisk("qemu", "256M")
    uri = h.weftd.uri("qemu")
    log("qemu-img info")
    test_info(h, uri)
    log("qemu-io patterns")
    test_pattern_io(h, uri)
    log("reads past the end")
    test_read_past_end(h, uri)
    log("qemu-img convert / compare")
    test_convert(h)
    h.weftd.check_alive("the qemu tests")


if __name__ == "__main__":
    run_test(main, description=__doc__)
