"""An ext4 filesystem through a vDisk: image in, image out, byte-identical and fsck-clean.

A directory tree of a few hundred files of random sizes (made here, from a fixed seed) becomes
an ext4 image (mke2fs -d), qemu-img convert writes it into a vDisk and reads it back out; the
two images must be byte-identical, e2fsck -fn must find the copy clean, and the files
extracted from the copy (debugfs rdump) must equal the originals.
"""

import filecmp
import os
import random

from weftlib import KIB, MIB, check, check_equal, log, run, run_test, sha256_file

IMAGE_BYTES = 128 * MIB
FILE_COUNT = 400
SEED = 20261121


def make_tree(root):
    """FILE_COUNT files in nested directories; sizes from 0 B to 3 MiB, mostly small."""
    rng = random.Random(SEED)
    directories = [root]
    total_bytes = 0
    for index in range(FILE_COUNT):
        if index % 25 == 0:
            parent = rng.choice(directories)
            directory = os.path.join(parent, f"dir{index:03d}")
            os.mkdir(directory)
            directories.append(directory)
        if index % 50 == 0:
            size = rng.randrange(MIB, 3 * MIB)  # Spans several vBlocks.
        elif index % 3 == 0:
            size = rng.randrange(0, 512 * KIB)
        else:
            size = rng.choice([0, 1, 100, 511, 4 * KIB, 4 * KIB + 1, 60 * KIB])
        path = os.path.join(rng.choice(directories), f"file{index:03d}.bin")
        with open(path, "wb") as file:
            file.write(rng.randbytes(size))
        total_bytes += size
    os.symlink("dir000/file000.bin", os.path.join(root, "link"))
    return total_bytes


def trees_equal(left, right):
    """Recursive comparison of names and contents; returns a list of differences."""
    differences = []
    comparison = filecmp.dircmp(left, right, ignore=["lost+found"])
    differences += [f"only in original: {n}" for n in comparison.left_only]
    differences += [f"only in copy: {n}" for n in comparison.right_only]
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    differences += [f"content differs: {n}" for n in mismatch + errors]
    for name in comparison.common_dirs:
        differences += trees_equal(os.path.join(left, name), os.path.join(right, name))
    return differences


def main(h):
    tree = h.path("tree")
    os.mkdir(tree)
    total_bytes = make_tree(tree)
    log(f"made {FILE_COUNT} files, {total_bytes} bytes")
    image = h.path("fs.img")
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, image, f"{IMAGE_BYTES // KIB}k"])
    run(["e2fsck", "-fn", image])

    h.cli.create_vdisk("fs", f"{IMAGE_BYTES // MIB}M")
    uri = h.weftd.uri("fs")
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", image, uri])
    copy = h.path("fs-copy.img")
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, copy])
    check_equal(os.path.getsize(copy), IMAGE_BYTES, "size of the image read back")
    run(["cmp", image, copy])
    check_equal(sha256_file(copy), sha256_file(image), "sha256 of the image read back")
    run(["e2fsck", "-fn", copy])

    extracted = h.path("extracted")
    os.mkdir(extracted)
    run(["debugfs", "-R", f"rdump / {extracted}", copy])
    differences = trees_equal(tree, extracted)
    check(not differences, "files extracted from the copy differ: " + "; ".join(differences[:20]))
    check(os.path.islink(os.path.join(extracted, "link")), "symlink lost")
    h.weftd.check_alive("the filesystem round trip")


if __name__ == "__main__":
    run_test(main, description=__doc__)
