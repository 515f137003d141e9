"""fio's nbd engine against weftd: mixed random reads and writes with crc32c verification.

Covers: several jobs at once, each on its own connection and its own region (numjobs 2-4,
offset_increment), at iodepth 1, 8 and 32, fixed 4 KiB and mixed 4-128 KiB blocks; every
written block is read back and checked (--verify=crc32c --verify_fatal=1, the header also
holds the block's offset, so misplaced data fails too); then a second fio process re-verifies
one configuration's data from a fresh connection (--verify_only).
"""

import json

from weftlib import MIB, check, check_equal, log, run, run_test

VDISK_SIZE_BYTES = 1024 * MIB
REGION_BYTES = 192 * MIB  # Each configuration gets its own region of the vDisk.

# (name, iodepth, numjobs, block size option, bytes per job)
CONFIGS = [
    ("qd1-2jobs-4k", 1, 2, "--bs=4k", 16 * MIB),
    ("qd8-3jobs-mixed", 8, 3, "--bsrange=4k-128k", 48 * MIB),
    ("qd32-4jobs-4k", 32, 4, "--bs=4k", 32 * MIB),
]


# fio runs in the work dir: it may leave files (verify state) in its cwd.
def fio_argv(h, name, iodepth, numjobs, block_option, job_bytes, region_offset, output_path,
             extra=()):
    return ["fio", f"--name={name}", "--ioengine=nbd", f"--uri={h.weftd.uri('fio')}",
            "--rw=randrw", "--rwmixread=50", block_option, f"--iodepth={iodepth}",
            f"--numjobs={numjobs}", f"--size={job_bytes}", f"--offset={region_offset}",
            f"--offset_increment={job_bytes}", "--verify=crc32c", "--verify_fatal=1",
            "--randseed=4242", "--verify_state_save=0", "--group_reporting=0", "--output-format=json",
            f"--output={output_path}", *extra]


def check_fio_output(output_path, numjobs, context):
    with open(output_path) as file:
        report = json.load(file)
    jobs = report["jobs"]
    check_equal(len(jobs), numjobs, f"{context}: number of fio jobs in the report")
    for job in jobs:
        check_equal(job["error"], 0, f"{context}: fio job {job['jobname']} error")
        check(job["read"]["io_bytes"] > 0, f"{context}: job {job['jobname']} read nothing")
    return jobs


def main(h):
    h.cli.create_vdisk("fio", "1G")
    for index, (name, iodepth, numjobs, block_option, job_bytes) in enumerate(CONFIGS):
        assert numjobs * job_bytes <= REGION_BYTES
        region_offset = index * REGION_BYTES
        output_path = h.path(f"fio-{name}.json")
        log(f"fio {name}")
        run(fio_argv(h, name, iodepth, numjobs, block_option, job_bytes, region_offset,
                     output_path), cwd=h.work_dir)
        jobs = check_fio_output(output_path, numjobs, name)
        for job in jobs:
            check(job["write"]["io_bytes"] > 0, f"{name}: job {job['jobname']} wrote nothing")
        h.weftd.check_alive(name)

    # Re-verify the first configuration from a new process and new connections: its data
    # survived everything written since to other regions.
    name, iodepth, numjobs, block_option, job_bytes = CONFIGS[0]
    output_path = h.path("fio-reverify.json")
    log(f"fio {name} --verify_only")
    run(fio_argv(h, name, iodepth, numjobs, block_option, job_bytes, 0, output_path,
                 extra=["--verify_only"]), cwd=h.work_dir)
    check_fio_output(output_path, numjobs, f"{name} verify_only")

    # The verification is not vacuous: overwrite 1 MiB of the first job's region (about half
    # of its blocks were written) and the same verify_only run must now fail.
    run(["qemu-io", "-f", "raw", "-c", f"write -P 0x5c {4 * MIB} {MIB}", h.weftd.uri("fio")])
    result = run(fio_argv(h, name, iodepth, numjobs, block_option, job_bytes, 0, output_path,
                          extra=["--verify_only"]), cwd=h.work_dir, check_rc=False)
    output = result.stdout + result.stderr
    check(result.returncode != 0 and "verify" in output,
          f"fio --verify_only passed over deliberately corrupted data:\n{output}")
    h.weftd.check_alive("the fio runs")

if __name__ == "__main__":
    run_test(main, description=__doc__)
