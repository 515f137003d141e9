"""Crashes and restarts of weftd lose no acknowledged write and no vDisk.

1. fio writes random 4 KiB blocks at iodepth 1 with crc32c headers, saving which writes were
   acknowledged (--verify_state_save); weftd is killed with SIGKILL mid-run and restarted on
   the same data dir; fio --verify_only --verify_state_load must find every acknowledged block.
   Then a deliberate corruption must make the same verification fail (so it checks something).
2. Writes acknowledged without any flush survive a SIGKILL right after the acknowledgement.
3. A restart while idle (SIGTERM, exit code 0, start again) keeps every container and vDisk
   (weft vdisk list / container list, sizes) and every vDisk's data (sha256 of the export).
"""

import json
import os
import time

from weftlib import KIB, MIB, check, check_equal, export_sha256, log, nbd_handle, pattern_bytes
from weftlib import run, run_test, spawn, wait_process, write_random_file

CRASH_VDISK_BYTES = 1024 * MIB
# How long fio writes before the kill. Not a timing assertion: the test only needs the kill
# to land while fio is running and after it wrote something, and checks both.
WRITE_BEFORE_KILL_S = 3


def crash_fio_argv(h, output_path, *extra):
    return ["fio", "--name=crash", "--ioengine=nbd", f"--uri={h.weftd.uri('crash')}",
            "--rw=randwrite", "--bs=4k", "--iodepth=1", f"--size={CRASH_VDISK_BYTES}",
            "--verify=crc32c", "--randseed=7", "--output-format=json", f"--output={output_path}",
            *extra]


def test_kill_during_fio(h):
    h.cli.create_vdisk("crash", f"{CRASH_VDISK_BYTES // MIB}M")
    write_json = h.path("crash-write.json")
    iolog = h.path("crash-write.iolog")
    fio = spawn(crash_fio_argv(h, write_json, "--do_verify=0", "--verify_state_save=1",
                               f"--write_iolog={iolog}"),
                cwd=h.work_dir, output_path=h.path("crash-write.out"))
    time.sleep(WRITE_BEFORE_KILL_S)
    check(fio.poll() is None, f"fio exited (code {fio.returncode}) before the kill; the write "
          "phase must outlast it")
    h.weftd.kill()
    code = wait_process(fio)
    log(f"fio write phase exited with code {code} after the kill")
    with open(write_json) as file:
        written_bytes = json.load(file)["jobs"][0]["write"]["io_bytes"]
    check(written_bytes > 0, "fio wrote nothing before the kill")
    log(f"fio had {written_bytes} bytes acknowledged before the kill")
    state = os.path.join(h.work_dir, "local-crash-0-verify.state")
    check(os.path.exists(state), f"fio saved no verify state ({state})")

    h.weftd.start()
    verify_json = h.path("crash-verify.json")
    # --verify_state_save=0: a verify run must not replace the state the write phase saved.
    verify_argv = crash_fio_argv(h, verify_json, "--verify_only", "--verify_state_load=1",
                                 "--verify_state_save=0")
    run(verify_argv, cwd=h.work_dir)
    with open(verify_json) as file:
        job = json.load(file)["jobs"][0]
    check_equal(job["error"], 0, "fio verify error after the crash")
    check_equal(job["read"]["io_bytes"], written_bytes, "bytes verified after the crash")

    # The verification checks something: corrupt the first block fio wrote (acknowledged for
    # certain: at iodepth 1 the next write was issued only after it) and it must fail there.
    with open(iolog) as file:
        offsets = [int(line.split()[3]) for line in file if line.split()[2:3] == ["write"]]
    check(len(offsets) >= 2, f"fio's write log holds {len(offsets)} writes")
    run(["qemu-io", "-f", "raw", "-c", f"write -P 0x5c {offsets[0]} 4096", h.weftd.uri("crash")])
    result = run(verify_argv, cwd=h.work_dir, check_rc=False)
    output = result.stdout + result.stderr
    check(result.returncode != 0 and "verify" in output and str(offsets[0]) in output,
          f"fio --verify_only did not report the corrupted block at {offsets[0]}:\n{output}")


def test_kill_after_unflushed_writes(h):
    h.cli.create_vdisk("noflush", "64M")
    uri = h.weftd.uri("noflush")
    handle = nbd_handle(uri)
    writes = [(0, 4 * KIB), (MIB - 512, 1 * KIB), (5 * MIB + 3, 300 * KIB), (63 * MIB, MIB)]
    for index, (offset, length) in enumerate(writes):
        handle.pwrite(pattern_bytes(f"noflush{index}", length), offset)
    # No flush, no disconnect: the writes are acknowledged and that must be enough.
    h.weftd.kill()
    h.weftd.start()
    reader = nbd_handle(uri)
    for index, (offset, length) in enumerate(writes):
        check(reader.pread(length, offset) == pattern_bytes(f"noflush{index}", length),
              f"acknowledged write {index} at {offset} (+{length}) lost in a SIGKILL")
    reader.shutdown()


def vdisk_table(h):
    """{name: size_bytes} from weft --json vdisk list."""
    return {vdisk["name"]: vdisk["size_bytes"] for vdisk in h.cli.vdisks()}


def test_idle_restart(h):
    h.cli.run("container", "create", "restartc")
    h.cli.create_vdisk("idle-a", "32M")
    h.cli.create_vdisk("idle-b", "48M", container="restartc")
    source = h.path("idle.raw")
    write_random_file(source, 32 * MIB, seed=99)
    run(["nbdcopy", "--flush", source, h.weftd.uri("idle-a")])
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x3c 1000 4000000",
         "-c", f"write -P 0x3d {47 * MIB} {MIB}", h.weftd.uri("idle-b")])
    os.unlink(source)
    # Hash the small vDisks (the 1 GiB fio one would only add minutes of copying).
    names = ["idle-a", "idle-b", "noflush"]
    before = {name: export_sha256(h.weftd.uri(name), h.work_dir) for name in names}
    vdisks_before = vdisk_table(h)
    containers_before = h.cli.container_names()
    check("restartc" in containers_before, f"new container not listed: {containers_before}")

    for round_number in range(2):
        h.weftd.stop()
        h.weftd.start()
        check_equal(vdisk_table(h), vdisks_before, f"vDisks after restart {round_number + 1}")
        check_equal(h.cli.container_names(), containers_before,
                    f"containers after restart {round_number + 1}")
        after = {name: export_sha256(h.weftd.uri(name), h.work_dir) for name in names}
        check_equal(after, before, f"sha256 of every vDisk after restart {round_number + 1}")


def main(h):
    for step in (test_kill_during_fio, test_kill_after_unflushed_writes, test_idle_restart):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)


if __name__ == "__main__":
    run_test(main, description=__doc__)
