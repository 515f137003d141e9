"""The weft CLI and the admin API against weftd: containers and vDisks through their life.

Covers: status; container create/list (the "default" container exists from the first start;
a duplicate name fails with exit 1); vdisk create (default and named container), list, show,
with and without --json (the JSON parses and holds the names, sizes and containers), the admin
API's /api/v1/node and /api/v1/vdisks; resize grow (new connections see the new size, old data
stays, the new range reads zero) and shrink (refused without --allow-shrink; with it the data
past the new end is gone, also after growing again); delete (the export disappears from nbdinfo --list and cannot be opened, and a
vDisk created again under the same name reads zeros).
"""

import json

from weftlib import MIB, TestFailure, check, check_equal, export_size, log, nbd_handle
from weftlib import pattern_bytes, run, run_test


def list_of(parsed, key):
    if isinstance(parsed, dict) and key in parsed:
        parsed = parsed[key]
    check(isinstance(parsed, list), f"expected a list of {key}, got {parsed!r}")
    return parsed


def vdisks_by_name(h):
    return {v["name"]: v for v in list_of(h.cli.json("vdisk", "list"), "vdisks")}


def write_and_close(uri, offset, data):
    handle = nbd_handle(uri)
    handle.pwrite(data, offset)
    handle.flush()
    handle.shutdown()


def read_and_close(uri, offset, length):
    """Reads in 8 MiB requests (below any sane maximum block size)."""
    handle = nbd_handle(uri)
    data = b"".join(handle.pread(min(8 * MIB, offset + length - position), position)
                    for position in range(offset, offset + length, 8 * MIB))
    handle.shutdown()
    return data


def test_status_and_containers(h):
    h.cli.run("status")
    status = h.cli.json("status")
    check(isinstance(status, dict) and status, f"weft --json status: {status!r}")
    node = h.weftd.admin_get("/api/v1/node")
    check(isinstance(node, dict) and node, f"/api/v1/node: {node!r}")

    check("default" in h.cli.container_names(), "no 'default' container after the first start")
    h.cli.run("container", "create", "gold", "--rf", "1")
    h.cli.run("container", "create", "gold", expect_rc=1)
    containers = {c["name"]: c for c in list_of(h.cli.json("container", "list"), "containers")}
    check_equal(sorted(containers), ["default", "gold"], "containers")
    text = h.cli.run("container", "list").stdout
    check("gold" in text and "default" in text, f"container list text lacks names:\n{text}")


def test_create_list_show(h):
    h.cli.create_vdisk("alpha", "64M", container="gold")
    h.cli.create_vdisk("beta", "1G")
    vdisks = vdisks_by_name(h)
    check_equal(sorted(vdisks), ["alpha", "beta"], "vDisk names")
    check_equal(vdisks["alpha"]["size_bytes"], 64 * MIB, "alpha size_bytes")
    check_equal(vdisks["beta"]["size_bytes"], 1024 * MIB, "beta size_bytes")
    check_equal(vdisks["alpha"]["container"], "gold", "alpha's container")
    check_equal(vdisks["beta"]["container"], "default", "beta's container")

    shown = h.cli.json("vdisk", "show", "alpha")
    check_equal(shown["name"], "alpha", "vdisk show name")
    check_equal(shown["size_bytes"], 64 * MIB, "vdisk show size_bytes")
    text = h.cli.run("vdisk", "show", "alpha").stdout
    check("alpha" in text, f"vdisk show text lacks the name:\n{text}")
    text = h.cli.run("vdisk", "list").stdout
    check("alpha" in text and "beta" in text, f"vdisk list text lacks names:\n{text}")

    api = list_of(h.weftd.admin_get("/api/v1/vdisks"), "vdisks")
    check_equal(sorted(v["name"] for v in api), ["alpha", "beta"], "/api/v1/vdisks names")
    for vdisk in api:
        check_equal(vdisk["size_bytes"], vdisks[vdisk["name"]]["size_bytes"],
                    f"/api/v1/vdisks size of {vdisk['name']}")
    containers = {c["name"]: c for c in list_of(h.cli.json("container", "list"), "containers")}
    if "vdisk_count" in containers["gold"]:
        check_equal(containers["gold"]["vdisk_count"], 1, "vdisk_count of 'gold'")
    check_equal(export_size(h.weftd.uri("alpha")), 64 * MIB, "NBD size of alpha")


def test_resize(h):
    uri = h.weftd.uri("alpha")
    keep = pattern_bytes("keep", MIB)
    tail = pattern_bytes("tail", MIB)
    write_and_close(uri, 10 * MIB, keep)
    write_and_close(uri, 63 * MIB, tail)

    log("grow alpha to 128M")
    h.cli.run("vdisk", "resize", "alpha", "--size", "128M")
    check_equal(vdisks_by_name(h)["alpha"]["size_bytes"], 128 * MIB, "size after growing")
    check_equal(export_size(uri), 128 * MIB, "NBD size after growing")
    info = json.loads(run(["nbdinfo", "--json", uri]).stdout)
    check_equal(info["exports"][0]["export-size"], 128 * MIB, "nbdinfo size after growing")
    check(read_and_close(uri, 63 * MIB, MIB) == tail, "data before the old end changed")
    check(read_and_close(uri, 64 * MIB, 64 * MIB) == bytes(64 * MIB), "grown range not zero")
    write_and_close(uri, 127 * MIB, tail)
    check(read_and_close(uri, 127 * MIB, MIB) == tail, "write at the new end did not read back")

    log("shrink alpha to 16M, then grow it back to 128M")
    # Shrinking discards data, so the CLI asks for --allow-shrink; without it nothing changes.
    refused = h.cli.run("vdisk", "resize", "alpha", "--size", "16M", expect_rc=None)
    check(refused.returncode in (1, 2), f"shrink without --allow-shrink: exit code "
          f"{refused.returncode}, expected 1 or 2")
    check_equal(export_size(uri), 128 * MIB, "NBD size after a refused shrink")
    h.cli.run("vdisk", "resize", "alpha", "--size", "16M", "--allow-shrink")
    check_equal(export_size(uri), 16 * MIB, "NBD size after shrinking")
    check_equal(vdisks_by_name(h)["alpha"]["size_bytes"], 16 * MIB, "size after shrinking")
    check(read_and_close(uri, 10 * MIB, MIB) == keep, "data before the new end changed")
    h.cli.run("vdisk", "resize", "alpha", "--size", "128M")
    check_equal(export_size(uri), 128 * MIB, "NBD size after growing again")
    check(read_and_close(uri, 16 * MIB, 112 * MIB) == bytes(112 * MIB),
          "data past a shrunk end came back after growing again")
    check(read_and_close(uri, 10 * MIB, MIB) == keep, "data kept by the shrink changed")


def test_delete(h):
    uri = h.weftd.uri("beta")
    write_and_close(uri, 0, pattern_bytes("beta", 4 * MIB))
    h.cli.run("vdisk", "delete", "beta")
    check_equal(sorted(vdisks_by_name(h)), ["alpha"], "vDisks after deleting beta")
    h.cli.run("vdisk", "show", "beta", expect_rc=1)
    listing = json.loads(run(["nbdinfo", "--list", "--json",
                              f"nbd://127.0.0.1:{h.weftd.nbd_port}/"]).stdout)
    names = [e["export-name"] for e in listing["exports"]]
    check("beta" not in names and "alpha" in names, f"nbdinfo --list after delete: {names}")
    result = run(["nbdinfo", uri], check_rc=False)
    check(result.returncode != 0, "a deleted vDisk's export still opens")
    try:
        nbd_handle(uri).shutdown()
    except Exception:  # nbd.Error: the server refused the export, as it should.
        pass
    else:
        raise TestFailure("libnbd opened a deleted vDisk's export")

    # Same name again: a new, empty vDisk.
    h.cli.create_vdisk("beta", "8M")
    check_equal(export_size(uri), 8 * MIB, "size of the re-created vDisk")
    check(read_and_close(uri, 0, 8 * MIB) == bytes(8 * MIB), "re-created vDisk shows old data")
    h.cli.run("vdisk", "delete", "beta")
    h.cli.run("vdisk", "delete", "alpha")
    check_equal(vdisks_by_name(h), {}, "vDisks after deleting all")


def main(h):
    for step in (test_status_and_containers, test_create_list_show, test_resize, test_delete):
        log(step.__name__)
        step(h)
        h.weftd.check_alive(step.__name__)


if __name__ == "__main__":
    run_test(main, description=__doc__)
