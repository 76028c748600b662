"""The scanner against hostile sysfs trees (issue 9, section 4).

Each test breaks a realistic tree (pci_passthrough.fixtures.sysfs_tree)
the way a hostile or corrupt tree would, and checks that the scan
returns (under a watchdog, so a hang is a failure, not a stuck run),
opens and lists nothing outside the root (an audit hook records every
open and directory listing), lists no malformed device, and reports the
problem with its path and what was expected.  Every test here fails on
a scanner that trusts sysfs.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from watched_scan import opened, outside_root, scan_watched

from pci_passthrough import exception
from pci_passthrough.discovery import sysfs_files, sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.model.device import ScanResult

# Intel 82599: sriov_offset 128, sriov_stride 2.
PF = "0000:04:00.0"
VFS = ("0000:04:10.0", "0000:04:10.2", "0000:04:10.4")
# Intel X710: sriov_offset 16, sriov_stride 1.
OTHER_PF = "0000:3b:00.0"
OTHER_VFS = ("0000:3b:02.0", "0000:3b:02.1")
EVERYTHING = {PF, *VFS, OTHER_PF, *OTHER_VFS}
WITH_PF = {PF, *VFS}

def scan(root: pathlib.Path, seconds: float = 20.0) -> ScanResult:
    """Scan under a watchdog, and check nothing outside the root was
    opened or listed."""
    result, accesses = scan_watched(root, seconds)
    outside = outside_root(root, accesses)
    assert outside == [], f"opened or listed outside the root: {outside}"
    return result


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> st.BuiltTree:
    return st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-82599", PF, numvfs=3, netdev="ens1f0"),
        st.PfLayout("intel-x710", OTHER_PF, numvfs=2, netdev="ens2f0"),
    )))


@pytest.fixture
def outside(tmp_path: pathlib.Path) -> pathlib.Path:
    """A decoy outside the root: following a link into it would find
    plausible devices."""
    decoy = tmp_path / "outside"
    decoy.mkdir()
    return decoy


def path_of(tree: st.BuiltTree, where: str) -> pathlib.Path:
    device, _, rest = where.partition("/")
    return tree.device_dir(device) / rest if rest else \
        tree.device_dir(device)


def listed(result: ScanResult) -> set[str]:
    addresses = [d.address for d in result.devices]
    assert len(addresses) == len(set(addresses)), "an address listed twice"
    return set(addresses)


def only_issue(result: ScanResult) -> sysfs_scan.ScanIssue:
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def copy_outside(tree: st.BuiltTree, address: str,
                 outside: pathlib.Path) -> pathlib.Path:
    """A copy of the device's directory in the decoy, links kept."""
    copy = outside / address
    shutil.copytree(tree.device_dir(address), copy, symlinks=True)
    return copy


# -- special files where sysfs has a regular file ---------------------------

KIND_SHOWN = {"fifo": "a FIFO", "socket": "a socket",
              "char-device": "a character device"}


@pytest.mark.parametrize("kind", st.SPECIAL_KINDS)
@pytest.mark.parametrize("where,refused", [
    # The PF's numa_node: today a FIFO there hangs the scan forever.
    (f"{PF}/numa_node", WITH_PF),
    (f"{VFS[1]}/numa_node", {VFS[1]}),
    (f"{PF}/vendor", WITH_PF),
    (f"{PF}/sriov_vf_device", set(VFS)),
    (f"{PF}/sriov_offset", set(VFS)),
    # Nothing decides on these: the device is kept, the value unknown.
    (f"{PF}/sriov_totalvfs", set()),
    (f"{PF}/sriov_numvfs", set()),
    (f"{PF}/net/ens1f0/address", set()),
])
def test_special_file_where_a_file_belongs_is_never_opened(
        tree, kind, where, refused):
    path = path_of(tree, where)
    try:
        st.make_special(path, kind)
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert issue.reason.startswith(
        f"{KIND_SHOWN[kind]}, expected a regular file; not opened")
    assert listed(result) == EVERYTHING - refused
    assert str(path) not in opened(tree.root)


def test_fifo_with_a_writer_does_not_block_either(tree):
    # With a writer holding the FIFO open, a blocking read waits for data
    # that never comes.
    path = path_of(tree, f"{VFS[0]}/numa_node")
    st.make_special(path, "fifo")
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(path, os.O_WRONLY)
    try:
        result = scan(tree.root)
    finally:
        os.close(writer)
        os.close(reader)
    assert only_issue(result).reason.startswith("a FIFO")
    assert listed(result) == EVERYTHING - {VFS[0]}


# -- the root is never left --------------------------------------------------

def test_bus_entry_pointing_outside_the_root(tree, outside):
    copy = copy_outside(tree, PF, outside)
    st.relink(tree.root / "bus/pci/devices" / PF, str(copy))
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(tree.root / "bus/pci/devices" / PF)
    assert "outside" in issue.reason and "not followed" in issue.reason
    assert listed(result) == {OTHER_PF, *OTHER_VFS}


def test_bus_entry_climbing_out_of_the_root_relatively(tree, outside):
    copy_outside(tree, PF, outside)
    st.relink(tree.root / "bus/pci/devices" / PF,
              f"../../../../outside/{PF}")
    result = scan(tree.root)
    assert "outside" in only_issue(result).reason
    assert listed(result) == {OTHER_PF, *OTHER_VFS}


def test_intermediate_directory_resolving_outside_the_root(tree, outside):
    # The bridge above the PF is a link to a copy outside the tree: every
    # path through it leaves the root, though it reads as inside.
    bridge = tree.device_dir(PF).parent
    shutil.copytree(bridge, outside / bridge.name, symlinks=True)
    shutil.rmtree(bridge)
    bridge.symlink_to(outside / bridge.name)
    result = scan(tree.root)
    assert listed(result) == {OTHER_PF, *OTHER_VFS}
    # Each device under the bridge is refused, the VFs too (their PF is
    # out of reach, so their bus entries are probed).
    bus = tree.root / "bus/pci/devices"
    assert [e.path for e in result.errors] == [
        str(bus / a) for a in (PF, *VFS)]
    assert all(f"resolves to {outside}" in e.reason for e in result.errors)


def test_vf_directory_that_is_a_link_outside(tree, outside):
    copy = copy_outside(tree, VFS[1], outside)
    vf_dir = tree.device_dir(VFS[1])
    shutil.rmtree(vf_dir)
    vf_dir.symlink_to(copy)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(vf_dir)
    assert issue.reason == (f"virtfn1 of PF {PF} points here, but it is "
                            f"not a directory; expected the VF's directory")
    assert listed(result) == EVERYTHING - {VFS[1]}


def test_pf_net_directory_that_is_a_link_outside(tree, outside):
    net = tree.device_dir(PF) / "net"
    shutil.copytree(net, outside / "net", symlinks=True)
    shutil.rmtree(net)
    net.symlink_to(outside / "net")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(net)
    assert issue.reason == ("a symbolic link; expected a directory of "
                            "netdevs")
    assert listed(result) == EVERYTHING - WITH_PF


def test_class_net_that_is_a_link_outside(tree, outside):
    class_net = tree.root / "class" / "net"
    shutil.copytree(class_net, outside / "net", symlinks=True)
    shutil.rmtree(class_net)
    class_net.symlink_to(outside / "net")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(class_net)
    assert "expected a directory, not a link; not followed" in issue.reason
    assert listed(result) == EVERYTHING
    assert all(d.netdev is None for d in result.devices if d.is_vf)


@pytest.mark.parametrize("link,target", [
    (f"{VFS[0]}/driver", "/sys/bus/pci/drivers/ixgbevf"),
    (f"{VFS[0]}/driver", "../../../../../../outside/drivers/ixgbevf"),
    (f"{VFS[0]}/iommu_group", "/sys/kernel/iommu_groups/7"),
    (f"{VFS[0]}/driver", "driver"),  # a loop
    (f"{VFS[0]}/iommu_group", "../../../../kernel/iommu_groups/1_0"),
    (f"{VFS[0]}/iommu_group", "../../../../kernel/iommu_groups/+7"),
    (f"{VFS[0]}/driver", "../../../../bus/pci/drivers/"),
    (f"{PF}/driver", "../../../../bus/pci/drivers/../../../../outside"),
])
def test_device_links_in_a_form_the_kernel_never_writes(tree, link,
                                                        target):
    path = path_of(tree, link)
    st.relink(path, target)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert issue.reason.startswith(f"-> {target!r}; expected ../../../../")
    device = link.partition("/")[0]
    assert listed(result) == EVERYTHING - (WITH_PF if device == PF
                                           else {device})


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_device_link_replaced_by_a_special_file(tree, kind):
    path = path_of(tree, f"{VFS[2]}/driver")
    st.make_special(path, kind)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert issue.reason.startswith("not a symbolic link; expected a link to "
                                   "../../../../bus/pci/drivers/")
    assert listed(result) == EVERYTHING - {VFS[2]}


def test_class_net_link_of_a_vf_pointing_outside(tree, outside):
    name = tree.devices[VFS[0]].netdev
    link = tree.root / "class" / "net" / name
    st.relink(link, str(outside / name))
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(link)
    assert issue.reason.startswith(f"-> '{outside / name}'; expected "
                                   f"../../devices/<device>/net/{name}")
    # The VF cannot be tied to a netdev, so it has none: it cannot back a
    # macvtap interface.
    assert result.by_address()[VFS[0]].netdev is None


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_bus_entry_that_is_not_a_link(tree, kind):
    entry = tree.root / "bus/pci/devices" / OTHER_PF
    entry.unlink()
    if kind == "file":
        entry.write_text("0\n")
    else:
        st.make_special(entry, "fifo")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(entry)
    assert "expected a symbolic link to the device's directory" in \
        issue.reason
    assert listed(result) == WITH_PF


def test_bus_entry_loop(tree):
    entry = tree.root / "bus/pci/devices" / OTHER_PF
    st.relink(entry, OTHER_PF)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(entry)
    assert "cannot be resolved" in issue.reason
    assert listed(result) == WITH_PF


def test_bus_directory_resolving_outside_the_root_is_refused(tree,
                                                             outside):
    bus = tree.root / "bus" / "pci" / "devices"
    shutil.copytree(bus, outside / "devices", symlinks=True)
    shutil.rmtree(bus)
    bus.symlink_to(outside / "devices")
    with pytest.raises(exception.SysfsRootError,
                       match="expected a directory, not a link"):
        scan(tree.root)


# -- virtfn links ------------------------------------------------------------

def test_virtfn_pointing_at_its_own_pf(tree):
    link = tree.device_dir(PF) / "virtfn1"
    st.relink(link, f"../{PF}")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(link)
    assert issue.reason == (
        f"-> '../{PF}' (the PF itself); expected ../{VFS[1]}, VF 1 by the "
        f"PF's sriov_offset 128 and sriov_stride 2; not followed")
    assert listed(result) == EVERYTHING - {VFS[1]}
    assert result.by_address()[PF].is_pf


def test_virtfn_pointing_at_another_pf(tmp_path):
    # A dual-port 82599: both PFs and their VFs share one directory.
    tree = st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-82599", "0000:04:00.0", numvfs=2),
        st.PfLayout("intel-82599", "0000:04:00.1", numvfs=2),
    )))
    link = tree.device_dir("0000:04:00.0") / "virtfn0"
    st.relink(link, "../0000:04:00.1")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(link)
    assert issue.reason.startswith(
        "-> '../0000:04:00.1' (another device); expected ../0000:04:10.0")
    devices = result.by_address()
    assert "0000:04:10.0" not in devices
    assert devices["0000:04:00.1"].is_pf
    assert {d.parent_addr for d in result.devices if d.is_vf} == {
        "0000:04:00.0", "0000:04:00.1"}


def test_two_virtfn_links_to_one_vf(tree):
    link = tree.device_dir(PF) / "virtfn1"
    st.relink(link, f"../{VFS[0]}")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(link)
    assert f"expected ../{VFS[1]}" in issue.reason
    assert listed(result) == EVERYTHING - {VFS[1]}
    assert result.by_address()[VFS[0]].vf_index == 0


def test_vf_claimed_by_two_pfs(tmp_path):
    tree = st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-82599", "0000:04:00.0", numvfs=2),
        st.PfLayout("intel-82599", "0000:04:00.1", numvfs=1),
    )))
    # The second PF's offset makes its VF 0 the first PF's VF 0, and its
    # link says so: two PFs claim 0000:04:10.0.
    second = tree.device_dir("0000:04:00.1")
    (second / "sriov_offset").write_text("127\n")
    st.relink(second / "virtfn0", "../0000:04:10.0")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(second / "virtfn0")
    assert issue.reason == (
        f"reaches VF 0000:04:10.0, as "
        f"{tree.device_dir('0000:04:00.0')}/virtfn0 does; expected one link "
        f"per VF; neither is listed")
    assert listed(result) == {"0000:04:00.0", "0000:04:10.2",
                              "0000:04:00.1"}


@pytest.mark.parametrize("name", ["virtfn01", "virtfn+1", "virtfn1_0",
                                  "virtfn\u0661", "virtfn99999"])
def test_virtfn_names_the_kernel_never_writes(tree, name):
    link = tree.device_dir(PF) / name
    link.symlink_to(f"../{VFS[1]}")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == sysfs_files.printable(str(link))
    assert issue.reason == ("unexpected entry; expected virtfn<N>, N a VF "
                            "index 0-65535")
    # The VF's own virtfn1 still lists it, once.
    assert listed(result) == EVERYTHING


# -- numbers only int() accepts, values out of range -------------------------

INT_ONLY = ["1_0", "+1", " 1", "1 ", "\u0661", "01", "0x1", "1.0", "",
            "\n", "-0", "-2", "1\n2\n", "\x00"]


@pytest.mark.parametrize("text", INT_ONLY)
def test_vf_numa_node_in_a_form_the_kernel_never_writes(tree, text):
    path = path_of(tree, f"{VFS[1]}/numa_node")
    path.write_bytes(text.encode())
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert issue.reason == (f"read {text.encode()!r}; expected -1 or a "
                            f"NUMA node 0-1023 in decimal ('%d\\n')")
    assert listed(result) == EVERYTHING - {VFS[1]}


@pytest.mark.parametrize("text", [*INT_ONLY, "65536", "-1", "junk"])
def test_sriov_totalvfs_garbage_keeps_the_pf(tree, text):
    path = path_of(tree, f"{PF}/sriov_totalvfs")
    path.write_bytes(text.encode())
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert issue.reason.endswith(
        "expected a decimal count 0-65535 ('%u\\n'); the PF is kept, its "
        "sriov_totalvfs unknown")
    assert listed(result) == EVERYTHING
    pf = result.by_address()[PF]
    assert (pf.totalvfs, pf.numvfs) == (None, 3)


@pytest.mark.parametrize("text", ["+2", "2_0", "\u0662", "4"])
def test_sriov_numvfs_garbage_keeps_the_pf(tree, text):
    path = path_of(tree, f"{PF}/sriov_numvfs")
    path.write_bytes(text.encode())
    (tree.device_dir(PF) / "sriov_totalvfs").write_text("3\n")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert "the PF is kept, its sriov_numvfs unknown" in issue.reason
    assert result.by_address()[PF].numvfs is None
    assert listed(result) == EVERYTHING


@pytest.mark.parametrize("file,text,refused", [
    ("vendor", "0x18086", WITH_PF),
    ("vendor", "0xffff", WITH_PF),
    ("vendor", "0x808", WITH_PF),
    ("vendor", "+0x8086", WITH_PF),
    ("device", "0x10fb0", WITH_PF),
    ("device", "0x10fb ", WITH_PF),
    ("class", "0x1020000", WITH_PF),
    ("class", "0x0200", WITH_PF),
    ("numa_node", "1024", WITH_PF),
    ("numa_node", "99999999999", WITH_PF),
    ("sriov_vf_device", "110ed", set(VFS)),
    ("sriov_vf_device", "0x-1", set(VFS)),
    ("sriov_offset", "65536", set(VFS)),
    ("sriov_offset", "0", set(VFS)),
    ("sriov_stride", "0", set(VFS)),
])
def test_ids_and_counts_out_of_range(tree, file, text, refused):
    path = path_of(tree, f"{PF}/{file}")
    path.write_bytes(text.encode() + b"\n")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert "expected" in issue.reason
    assert listed(result) == EVERYTHING - refused


def test_vf_beyond_the_last_bus(tmp_path):
    tree = st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-e810", "0000:ff:00.0", numvfs=1),)))
    (tree.device_dir("0000:ff:00.0") / "sriov_offset").write_text("300\n")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.reason == ("VF 0 by sriov_offset 300 and sriov_stride 1 "
                            "is beyond bus ff; expected VFs on buses up to "
                            "ff")
    assert listed(result) == {"0000:ff:00.0"}


@pytest.mark.parametrize("name", [
    "0x0000:04:00.0", "0000:04:00.0 ", "0000:04:0A.0", "0:4:0.0",
    "00000:04:00.0", "0000:04:20.0", "0000:04:00.8"])
def test_device_directories_not_named_as_the_kernel_names_them(tree, name):
    # The PF's directory and bus entry renamed: a name normalize_address()
    # accepts is still not a name the kernel writes.
    pf_dir = tree.device_dir(PF)
    renamed = pf_dir.with_name(name)
    pf_dir.rename(renamed)
    entry = tree.root / "bus/pci/devices" / PF
    entry.unlink()
    (entry.parent / name).symlink_to(os.path.relpath(renamed, entry.parent))
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(entry.parent / name)
    assert issue.reason == ("unexpected entry; expected a PCI address "
                            "dddd:bb:ss.f as the kernel names devices")
    assert listed(result) == {OTHER_PF, *OTHER_VFS}


def test_bus_entry_whose_directory_has_another_name(tree):
    entry = tree.root / "bus/pci/devices" / OTHER_PF
    st.relink(entry, os.path.relpath(tree.device_dir(PF), entry.parent))
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(entry)
    assert issue.reason.endswith(f"expected a directory named {OTHER_PF}")
    assert listed(result) == WITH_PF


# -- netdev names ------------------------------------------------------------

BAD_NAMES = [b"\xffbad", b"bad:name", b"a b", b"x" * 16, b"caf\xc3\xa9",
             b"tab\tname"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_vf_netdev_name_the_kernel_would_refuse(tree, name):
    st.rename_netdev(tree, VFS[0], name)
    result = scan(tree.root)
    issue = only_issue(result)
    assert f"invalid netdev name {name!r} for VF {VFS[0]}" in issue.reason
    assert issue.path.isprintable()
    json.dumps([issue.path, issue.reason], ensure_ascii=False).encode()
    assert listed(result) == EVERYTHING - {VFS[0]}


def test_scan_command_prints_a_netdev_name_that_is_not_utf8(tree):
    # Before, the table died with UnicodeEncodeError on the name.
    st.rename_netdev(tree, VFS[0], b"\xffbad")
    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", "scan",
         "--sysfs-root", str(tree.root)],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert f"skipped {tree.root}/class/net/\\xffbad: invalid netdev name " \
           f"b'\\xffbad' for VF {VFS[0]}" in proc.stdout


@pytest.mark.parametrize("name", BAD_NAMES)
def test_pf_netdev_name_the_kernel_would_refuse(tree, name):
    st.rename_netdev(tree, PF, name)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path.startswith(str(tree.device_dir(PF) / "net") + "/")
    assert issue.path.isprintable()
    assert f"invalid netdev name {name!r}" in issue.reason
    assert listed(result) == EVERYTHING - WITH_PF


def test_netdev_on_a_vf_without_driver(tmp_path):
    tree = st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-82599", PF, numvfs=2, vf_drivers={1: None}),)))
    # A netdev cannot exist without a driver: class/net claims one.
    net = tree.device_dir(VFS[1]) / "net" / "ghost"
    net.mkdir(parents=True)
    link = tree.root / "class" / "net" / "ghost"
    link.symlink_to(os.path.relpath(net, link.parent))
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(tree.device_dir(PF) / "virtfn1")
    assert issue.reason == (f"VF {VFS[1]} has netdev ghost but no driver; "
                            f"expected none without a driver; not listed")
    assert listed(result) == {PF, VFS[0]}


@pytest.mark.parametrize("target", [
    "ens1f0v0",  # a loop
    "../../devices/pci0000:00/0000:03:03.0/0000:04:10.0/net/other",
    "../../devices/pci0000:00/0000:03:03.0/0000:04:10.0",
    "../../devices/pci0000:00/../pci0000:00/0000:03:03.0/0000:04:10.0/net/"
    "ens1f0v0",
])
def test_class_net_links_in_forms_the_kernel_never_writes(tree, target):
    link = tree.root / "class" / "net" / "ens1f0v0"
    st.relink(link, target)
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(link)
    assert issue.reason.startswith(f"-> {target!r}; expected ../../devices/"
                                   f"<device>/net/ens1f0v0")
    assert result.by_address()[VFS[0]].netdev is None


# -- MACs and the other netdev attributes of a PF ----------------------------

@pytest.mark.parametrize("text,why", [
    ("01:00:5e:00:00:01", "multicast bit set"),
    ("33:33:00:00:00:01", "multicast bit set"),
    ("00:00:00:00:00:00", "not all zeros"),
    ("90:e2:ba:11:22", "6-octet"),
    ("90-e2-ba-11-22-30", "6-octet"),
    ("90:e2:ba:11:22:30:00", "6-octet"),
])
def test_pf_mac_that_is_not_a_unicast_address(tree, text, why):
    path = tree.device_dir(PF) / "net" / "ens1f0" / "address"
    path.write_text(text + "\n")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(path)
    assert why in issue.reason and "the PF is kept" in issue.reason
    assert result.by_address()[PF].mac is None
    assert listed(result) == EVERYTHING


def test_pf_operstate_garbage(tree):
    path = tree.device_dir(PF) / "net" / "ens1f0" / "operstate"
    path.write_text("sideways\n")
    result = scan(tree.root)
    assert only_issue(result).reason.startswith(
        "read b'sideways\\n'; expected one of unknown, notpresent, down")
    assert result.by_address()[PF].link_state is None


def test_every_issue_is_printable_and_names_what_was_expected(tree):
    st.rename_netdev(tree, VFS[2], b"\xfe\xff")
    path_of(tree, f"{VFS[0]}/numa_node").write_bytes(b"\xff\xfe\n")
    st.make_special(path_of(tree, f"{PF}/class"), "fifo")
    result = scan(tree.root)
    assert len(result.errors) == 3
    for issue in result.errors:
        assert issue.path.isprintable() and issue.reason.isprintable()
        assert "expected" in issue.reason
        (issue.path + issue.reason).encode("utf-8")



def test_class_net_that_is_a_fifo(tree):
    class_net = tree.root / "class" / "net"
    shutil.rmtree(class_net)
    st.make_special(class_net, "fifo")
    result = scan(tree.root)
    issue = only_issue(result)
    assert issue.path == str(class_net)
    assert issue.reason.startswith("cannot be listed (Not a directory); "
                                   "expected the directory of netdevs")
    assert listed(result) == EVERYTHING


def test_bus_directory_that_is_a_fifo(tree):
    bus = tree.root / "bus" / "pci" / "devices"
    shutil.rmtree(bus)
    st.make_special(bus, "fifo")
    with pytest.raises(exception.SysfsRootError,
                       match=r"cannot be listed \(Not a directory\)"):
        scan(tree.root)
