"""A hypothesis fuzzer over realistic sysfs trees (issue 9, section 4).

Each example builds a tree with pci_passthrough.fixtures.sysfs_tree, then
writes garbage into files (random bytes, values only int() accepts, ids
out of range) or replaces them by FIFOs, sockets, device nodes,
directories and links, and points links at random targets: inside the
tree, outside it (a decoy holding plausible devices), dangling, loops,
or replaces them by FIFOs and files.  Invariants:

- the scan returns (a watchdog thread: a hang fails the example);
- nothing outside the root is opened or listed (an audit hook);
- every listed device was in the tree, is well formed, and equals its
  record in the unbroken tree, except attributes nothing decides on,
  which may become None when a problem is listed;
- every corruption of something the scan reads is listed as an error
  naming its path, unless the way to it (a bus entry, a virtfn link, the
  PF's sriov_offset or sriov_stride) was broken too, and that is listed;
- every error is printable and says what was expected.

A corruption that writes a value the kernel could write (another driver,
a valid number) is not a corruption and is not applied.

Seeded (derandomize) and bounded: PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES
raises the number of examples for longer runs.
"""

import dataclasses
import os
import pathlib
import re
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from watched_scan import outside_root, scan_watched

from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.model.device import DEV_TYPE_PF, DEV_TYPE_VF, ScanResult
from pci_passthrough.model.netdev_name import is_valid_netdev_name

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "60"))

LAYOUTS = (
    st.HostLayout((
        st.PfLayout("intel-82599", "0000:04:00.0", numvfs=3,
                    netdev="ens1f0", vf_drivers={2: "vfio-pci"}),
        st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=2,
                    vf_drivers={0: None}, numa_node=1),
    )),
    st.HostLayout((
        st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=2,
                    switchdev=True, netdev="enp94s0f0np0"),
        st.PfLayout("intel-e810", "0000:af:00.0", numvfs=1,
                    numa_node=None, bridges=3),
    )),
    st.HostLayout((
        st.PfLayout("intel-e810", "10000:01:00.0", numvfs=2, netdev=None,
                    numa_file=False),
        st.PfLayout("intel-x710", "0000:d8:00.0", numvfs=0),
    )),
)

# Fields nothing decides on: a problem with them keeps the device.
NULLABLE = {"mac", "link_state", "phys_port_name", "phys_switch_id",
            "totalvfs", "numvfs", "netdev"}
ADDRESS = re.compile(
    r"(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")

# What the kernel could write, per kind of file (an independent reading
# of Documentation/ABI/testing/sysfs-bus-pci).
VALID = {
    "numa": lambda d: (re.fullmatch(rb"(-1|0|[1-9][0-9]*)\n?", d)
                       is not None and int(d) < 1024),
    "count": lambda d: (re.fullmatch(rb"(0|[1-9][0-9]*)\n?", d)
                        is not None and int(d) <= 0xFFFF),
    "vendor": lambda d: (re.fullmatch(rb"(0[xX])?[0-9a-fA-F]{4}\n?", d)
                         is not None and d.strip().lower()[-4:] != b"ffff"),
    "hex4": lambda d: re.fullmatch(rb"(0[xX])?[0-9a-fA-F]{4}\n?", d),
    "hex6": lambda d: re.fullmatch(rb"(0[xX])?[0-9a-fA-F]{6}\n?", d),
    "vfdev": lambda d: re.fullmatch(rb"(0[xX])?[0-9a-fA-F]{1,4}\n?", d),
    "mac": lambda d: (re.fullmatch(rb"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\n?",
                                   d) is not None
                      and not int(d[:2], 16) & 1
                      and d[:17] != b"00:00:00:00:00:00"),
    "operstate": lambda d: d.rstrip(b"\n") in (
        b"unknown", b"notpresent", b"down", b"lowerlayerdown", b"testing",
        b"dormant", b"up") and d.count(b"\n") <= 1,
    "port": lambda d: re.fullmatch(rb"[!-~]{1,15}\n?", d),
    "switch": lambda d: re.fullmatch(rb"([0-9a-f]{2}){1,32}\n?", d),
}
TRICKY = [b"1_0", b"+1", b" 1", b"1 ", "\u0661".encode(), b"01", b"0x1",
          b"-0", b"", b"\n", b"0x18086", b"0xffff", b"65536", b"1024",
          b"\xff\xfe", b"01:00:5e:00:00:01", b"00:00:00:00:00:00",
          b"1\n2\n", b"9" * 200]


@dataclasses.dataclass
class Target:
    path: pathlib.Path
    kind: str  # a VALID key for files; bus, virtfn, driver, group, net
    masks: tuple[pathlib.Path, ...] = ()
    pristine: str = ""  # a link's target text


def targets(tree: st.BuiltTree) -> dict[pathlib.Path, Target]:
    """What the scan reads, and what lies on the way to it."""
    found: dict[pathlib.Path, Target] = {}

    def add(path: pathlib.Path, kind: str, *masks: pathlib.Path) -> None:
        text = os.readlink(path) if path.is_symlink() else ""
        found[path] = Target(path, kind, masks, text)

    bus = tree.root / "bus" / "pci" / "devices"
    for pf in tree.pfs:
        entry = bus / pf.address
        d = pf.path
        add(entry, "bus")
        for name, kind in (("vendor", "vendor"), ("device", "hex4"),
                           ("class", "hex6"), ("sriov_totalvfs", "count"),
                           ("sriov_numvfs", "count")):
            add(d / name, kind, entry)
        if (d / "numa_node").exists():
            add(d / "numa_node", "numa", entry)
        add(d / "driver", "driver", entry)
        add(d / "iommu_group", "group", entry)
        if pf.netdev is not None:
            net = d / "net"
            for attr, kind in (("address", "mac"), ("operstate", "operstate"),
                               ("phys_port_name", "port"),
                               ("phys_switch_id", "switch")):
                add(net / pf.netdev / attr, kind, entry)
            for other in net.iterdir():
                if other.name != pf.netdev:
                    add(other / "phys_port_name", "port", entry)
        vfs = [v for v in tree.vfs if v.parent_addr == pf.address]
        if not vfs:
            continue
        for name, kind in (("sriov_vf_device", "vfdev"),
                           ("sriov_offset", "count"),
                           ("sriov_stride", "count")):
            add(d / name, kind, entry)
        for vf in vfs:
            link = d / f"virtfn{vf.vf_index}"
            add(link, "virtfn", entry)
            way = (entry, link, d / "sriov_offset", d / "sriov_stride")
            if (vf.path / "numa_node").exists():
                add(vf.path / "numa_node", "numa", *way)
            if (vf.path / "driver").is_symlink():
                add(vf.path / "driver", "driver", *way)
            add(vf.path / "iommu_group", "group", *way)
            if vf.netdev is not None:
                add(tree.root / "class" / "net" / vf.netdev, "net")
    return found


def valid_link(target: Target, text: str) -> bool:
    """Whether a new link target is one the kernel could write."""
    if text == target.pristine:
        return True
    if target.kind == "bus":
        here = target.path.parent
        return (os.path.realpath(here / text)
                == os.path.realpath(here / target.pristine))
    ups = target.pristine.split("/").count("..")
    if target.kind == "driver":
        return re.fullmatch(rf"(\.\./){{{ups}}}bus/pci/drivers/"
                            r"[!-.0-~]{1,64}", text) is not None
    if target.kind == "group":
        return re.fullmatch(rf"(\.\./){{{ups}}}kernel/iommu_groups/"
                            r"(0|[1-9][0-9]{0,8})", text) is not None
    return False


def every_path(root: pathlib.Path) -> list[pathlib.Path]:
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            paths.append(pathlib.Path(dirpath) / name)
    return sorted(paths)


@dataclasses.dataclass
class Corruption:
    path: pathlib.Path
    what: str


def corrupt(data: hst.DataObject, tree: st.BuiltTree,
            decoy: pathlib.Path) -> list[Corruption]:
    """Break 1 to 3 files or links; returns what was done."""
    paths = [p for p in every_path(tree.root)
             if p.is_symlink() or p.is_file()]
    anywhere = every_path(tree.root) + every_path(decoy)
    known = targets(tree)
    # Mostly what the scan reads, sometimes anything.
    read = sorted(p for p in known if p in set(paths))
    chosen = data.draw(hst.lists(
        hst.one_of(hst.sampled_from(read), hst.sampled_from(read),
                   hst.sampled_from(read), hst.sampled_from(paths)),
        min_size=1, max_size=3, unique=True), label="paths")
    done = []
    for path in chosen:
        target = known.get(path)
        if path.is_symlink():
            how = data.draw(hst.sampled_from(
                ["inside", "outside", "climb", "dangling", "loop", "fifo",
                 "file"]), label=f"{path.name}: link")
            if how in ("fifo", "file"):
                if how == "fifo":
                    st.make_special(path, "fifo")
                else:
                    st.relink(path, "x")
                    path.unlink()
                    path.write_bytes(b"0\n")
                done.append(Corruption(path, how))
                continue
            if how == "inside":
                dest = data.draw(hst.sampled_from(anywhere[:-1]),
                                 label="inside")
                text = os.path.relpath(dest, path.parent)
            elif how == "outside":
                text = str(data.draw(hst.sampled_from(every_path(decoy)),
                                     label="outside"))
            elif how == "climb":
                depth = len(path.relative_to(tree.root).parts)
                text = "../" * depth + "../outside/" + data.draw(
                    hst.sampled_from(["", "0000:04:00.0", "drivers/x"]),
                    label="climb")
            elif how == "dangling":
                text = data.draw(hst.sampled_from(
                    ["nowhere", "../nowhere", "../../devices/x/net/y"]),
                    label="dangling")
            else:
                text = path.name
            if target is not None and valid_link(target, text):
                continue
            st.relink(path, text)
            done.append(Corruption(path, f"-> {text}"))
        else:
            how = data.draw(hst.sampled_from(
                ["bytes", "tricky", "tricky", "tricky", "fifo", "socket",
                 "dir", "symlink"]), label=f"{path.name}: file")
            if how in ("fifo", "socket"):
                st.make_special(path, how)
            elif how == "dir":
                st.make_unreadable(path)
            elif how == "symlink":
                st.relink(path, "../vendor")
            else:
                garbage = data.draw(
                    hst.binary(max_size=150) if how == "bytes"
                    else hst.sampled_from(TRICKY), label="garbage")
                if target is not None and VALID[target.kind](garbage):
                    continue
                path.write_bytes(garbage)
            done.append(Corruption(path, how))
    return done


def check_well_formed(result: ScanResult) -> None:
    for dev in result.devices:
        assert ADDRESS.fullmatch(dev.address), dev
        assert dev.dev_type in (DEV_TYPE_PF, DEV_TYPE_VF), dev
        assert re.fullmatch(r"[0-9a-f]{4}", dev.vendor_id), dev
        assert re.fullmatch(r"[0-9a-f]{4}", dev.product_id), dev
        assert dev.numa_node is None or (
            type(dev.numa_node) is int and 0 <= dev.numa_node < 1024), dev
        assert dev.netdev is None or is_valid_netdev_name(dev.netdev), dev
        assert dev.is_pf or ADDRESS.fullmatch(dev.parent_addr or ""), dev


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          database=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=hst.sampled_from(LAYOUTS), data=hst.data())
def test_scan_of_a_broken_tree_keeps_its_invariants(layout, data):
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(tmp)
        tree = st.build_tree(base / "sys", layout)
        pristine = sysfs_scan.scan(tree.root)
        assert pristine.errors == ()
        decoy = base / "outside"
        decoy.mkdir()
        shutil.copytree(tree.pfs[0].path, decoy / tree.pfs[0].address,
                        symlinks=True)
        (decoy / "drivers" / "x").mkdir(parents=True)
        known = targets(tree)
        done = corrupt(data, tree, decoy)

        result, accesses = scan_watched(tree.root, 30)

        outside = outside_root(tree.root, accesses)
        assert outside == []
        check_well_formed(result)
        before = pristine.by_address()
        for dev in result.devices:
            assert dev.address in before, dev
            old = before[dev.address]
            for field in dev._fields:
                new_value, old_value = getattr(dev, field), getattr(old,
                                                                    field)
                if new_value != old_value:
                    assert field in NULLABLE and new_value is None, (
                        field, dev, old)
                    assert result.errors
        reported = {e.path for e in result.errors}
        broken = {c.path for c in done}
        for corruption in done:
            target = known.get(corruption.path)
            if target is None:
                continue  # not read by the scan
            masked = [m for m in target.masks if m in broken]
            assert (str(corruption.path) in reported
                    or any(str(m) in reported for m in masked)), (
                corruption, result.errors)
        for issue in result.errors:
            assert issue.path.isprintable() and issue.reason.isprintable()
            assert "expected" in issue.reason, issue


# -- near misses: one value at a time, a few characters from valid ----------

NEAR = [" ", "+", "-", "_", "\t", "\x00", "\u0663", "\uff11", "0", "x",
        "\n", "f", "F", ":", "."]


@hst.composite
def near_miss(draw: hst.DrawFn, valid: bytes) -> bytes:
    """``valid`` with one to three characters inserted, replaced or
    deleted: the forms int() and lenient parsers accept."""
    text = valid.decode()
    for _ in range(draw(hst.integers(1, 3))):
        at = draw(hst.integers(0, len(text)))
        how = draw(hst.sampled_from(["insert", "replace", "delete"]))
        char = draw(hst.sampled_from(NEAR))
        if how == "insert" or at == len(text):
            text = text[:at] + char + text[at:]
        elif how == "replace":
            text = text[:at] + char + text[at + 1:]
        else:
            text = text[:at] + text[at + 1:]
    return text.encode()


class _OneTree:
    """One tree for every example: each example breaks one file and puts
    it back."""

    tree: st.BuiltTree | None = None
    pristine: ScanResult | None = None
    files: list[Target] = []


@pytest.fixture(scope="module")
def one_tree(tmp_path_factory: pytest.TempPathFactory) -> type[_OneTree]:
    tree = st.build_tree(tmp_path_factory.mktemp("near") / "sys",
                         LAYOUTS[0])
    _OneTree.tree = tree
    _OneTree.pristine = sysfs_scan.scan(tree.root)
    _OneTree.files = sorted(
        (t for t in targets(tree).values() if t.kind in VALID),
        key=lambda t: str(t.path))
    return _OneTree


@settings(max_examples=EXAMPLES * 3, deadline=None, derandomize=True,
          database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hst.data())
def test_values_a_few_characters_from_valid_are_refused(one_tree, data):
    assert one_tree.tree is not None and one_tree.pristine is not None
    target = data.draw(hst.sampled_from(one_tree.files), label="file")
    valid = target.path.read_bytes()
    garbage = data.draw(near_miss(valid), label="garbage")
    if VALID[target.kind](garbage):
        return  # a value the kernel could write: not a corruption
    target.path.write_bytes(garbage)
    try:
        result, _ = scan_watched(one_tree.tree.root, 30)
    finally:
        target.path.write_bytes(valid)
    assert str(target.path) in {e.path for e in result.errors}, (
        garbage, result.errors)
    before = one_tree.pristine.by_address()
    for dev in result.devices:
        old = before[dev.address]
        for field in dev._fields:
            if getattr(dev, field) != getattr(old, field):
                assert field in NULLABLE and getattr(dev, field) is None, (
                    field, garbage)
