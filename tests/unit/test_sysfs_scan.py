"""The scanner over real trees (files and symlinks in tmp_path), one test
per edge case of the kernel's layout."""

import errno
import os
import pathlib

import pytest

from pci_passthrough import exception
from pci_passthrough.discovery import sysfs_files, sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.model.device import DEV_TYPE_PF, DEV_TYPE_VF


def build(tmp_path: pathlib.Path, *pfs: st.PfLayout) -> st.BuiltTree:
    return st.build_tree(tmp_path / "sys", st.HostLayout(pfs))


def by_addr(result: sysfs_scan.ScanResult) -> dict:  # type: ignore[type-arg]
    return result.by_address()


def test_intel_82599_pf_and_vfs_as_the_kernel_shows_them(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-82599", "0000:04:00.0",
                                       numvfs=2, vf_drivers={1: "vfio-pci"},
                                       netdev="ens1f0"))
    result = sysfs_scan.scan(tree.root)
    assert result.errors == ()
    pf, vf0, vf1 = result.devices
    assert (pf.address, pf.dev_type, pf.vendor_id, pf.product_id) == (
        "0000:04:00.0", DEV_TYPE_PF, "8086", "10fb")
    assert (pf.totalvfs, pf.numvfs, pf.driver, pf.netdev) == (
        63, 2, "ixgbe", "ens1f0")
    assert pf.class_code == "020000" and pf.numa_node == 0
    # 82599: offset 128, stride 2 -> 04:10.0 and 04:10.2.
    assert (vf0.address, vf1.address) == ("0000:04:10.0", "0000:04:10.2")
    assert (vf0.dev_type, vf0.product_id, vf0.parent_addr, vf0.vf_index,
            vf0.driver, vf0.netdev, vf0.pf_netdev) == (
        DEV_TYPE_VF, "10ed", "0000:04:00.0", 0, "ixgbevf", "ens1f0v0",
        "ens1f0")
    assert isinstance(vf0.iommu_group, int)
    # A PF's netdev attributes are read; a VF's are not (nothing uses
    # them, and they would double the scan's system calls).
    assert pf.mac and pf.link_state == "up"
    assert (vf0.mac, vf0.link_state, vf0.phys_port_name) == (None, None,
                                                              None)
    # On vfio-pci a VF has no net/: it cannot back a macvtap interface.
    assert (vf1.driver, vf1.netdev, vf1.mac) == ("vfio-pci", None, None)


@pytest.mark.parametrize("numa_node,numa_file,expected", [
    (1, True, 1), (None, True, None), (0, False, None)])
def test_numa_node_unknown_or_absent_is_none(tmp_path, numa_node,
                                             numa_file, expected):
    tree = build(tmp_path, st.PfLayout("intel-x710", "0000:3b:00.0",
                                       numvfs=1, numa_node=numa_node,
                                       numa_file=numa_file))
    assert {d.numa_node for d in sysfs_scan.scan(tree.root).devices} == {
        expected}


def test_totalvfs_zero_is_not_an_sriov_pf(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-x710", "0000:3b:00.0",
                                       numvfs=0, totalvfs=0))
    assert sysfs_scan.scan(tree.root).devices == ()


def test_numvfs_zero_reports_the_pf_alone(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-x710", "0000:3b:00.0",
                                       numvfs=0))
    (pf,) = sysfs_scan.scan(tree.root).devices
    assert (pf.numvfs, pf.totalvfs) == (0, 64)


def test_numvfs_ahead_of_the_virtfn_links_reports_the_linked_vfs(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=4, vf_links=2))
    result = sysfs_scan.scan(tree.root)
    pf = result.devices[0]
    assert pf.numvfs == 4
    assert [d.vf_index for d in result.devices[1:]] == [0, 1]
    assert result.errors == ()


def test_virtfn_links_are_ordered_numerically(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=12))
    vfs = sysfs_scan.scan(tree.root).devices[1:]
    assert [v.vf_index for v in vfs] == list(range(12))
    # vf_index follows the virtfn number, not text order of the links.
    for vf in vfs:
        link = tree.device_dir("0000:5e:00.0") / f"virtfn{vf.vf_index}"
        assert os.readlink(link).endswith(vf.address)


def test_deep_topology_is_resolved_not_counted(tmp_path):
    tree = build(tmp_path, st.PfLayout("mellanox-cx5", "0000:af:00.0",
                                       numvfs=2, bridges=4))
    assert len(tree.device_dir("0000:af:00.0").relative_to(
        tree.root).parts) == 7
    result = sysfs_scan.scan(tree.root)
    assert [d.address for d in result.devices] == [
        "0000:af:00.0", "0000:af:00.2", "0000:af:00.3"]
    assert {d.driver for d in result.devices} == {"mlx5_core"}


def test_vf_without_driver_has_no_netdev(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-x710", "0000:3b:00.0",
                                       numvfs=2, vf_drivers={0: None}))
    vf0, vf1 = sysfs_scan.scan(tree.root).devices[1:]
    assert (vf0.driver, vf0.netdev) == (None, None)
    assert vf1.netdev is not None


def test_switchdev_pf_picks_the_uplink_never_a_representor(tmp_path):
    tree = build(tmp_path, st.PfLayout("mellanox-cx6dx", "0000:5e:00.0",
                                       numvfs=3, switchdev=True,
                                       netdev="enp94s0f0np0"))
    net = tree.device_dir("0000:5e:00.0") / "net"
    names = sorted(os.listdir(net))
    assert len(names) == 4
    result = sysfs_scan.scan(tree.root)
    pf = result.devices[0]
    assert (pf.netdev, pf.phys_port_name) == ("enp94s0f0np0", "p0")
    assert [v.netdev for v in result.devices[1:]] == [
        "enp94s0f0np0v0", "enp94s0f0np0v1", "enp94s0f0np0v2"]
    assert all(v.pf_netdev == "enp94s0f0np0" for v in result.devices[1:])


def test_uplink_found_when_listing_order_puts_it_last(tmp_path):
    tree = build(tmp_path, st.PfLayout("mellanox-cx6dx", "0000:5e:00.0",
                                       numvfs=2, switchdev=True,
                                       netdev="zz0"))
    names = sorted(os.listdir(tree.device_dir("0000:5e:00.0") / "net"))
    assert names[-1] == "zz0"
    assert sysfs_scan.scan(tree.root).devices[0].netdev == "zz0"


@pytest.mark.parametrize("attribute", ["phys_port_name", "phys_switch_id",
                                       "operstate"])
def test_optional_netdev_files_that_fail_to_read_are_none(
        tmp_path, monkeypatch, attribute):
    tree = build(tmp_path, st.PfLayout("intel-82599", "0000:04:00.0",
                                       numvfs=1, netdev="ens1f0"))
    failing = str(tree.device_dir("0000:04:00.0") / "net" / "ens1f0"
                  / attribute)
    real_read = sysfs_files.read

    def read(path: str) -> bytes:
        # A sysfs attribute whose show() fails is a regular file whose
        # read fails (EOPNOTSUPP); tmpfs cannot make one, so the failure
        # is injected at the scanner's one read function.
        if path.endswith(failing):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP),
                          path)
        return real_read(path)

    monkeypatch.setattr(sysfs_files, "read", read)
    result = sysfs_scan.scan(tree.root)
    assert result.errors == ()
    pf = result.devices[0]
    assert pf.netdev == "ens1f0"
    field = {"operstate": "link_state"}.get(attribute, attribute)
    assert getattr(pf, field) is None


def test_a_directory_where_an_attribute_belongs_is_reported(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-82599", "0000:04:00.0",
                                       numvfs=1, netdev="ens1f0"))
    path = tree.device_dir("0000:04:00.0") / "net" / "ens1f0" / "address"
    st.make_unreadable(path)
    result = sysfs_scan.scan(tree.root)
    (issue,) = result.errors
    assert issue.path == str(path)
    assert "a directory, expected a regular file" in issue.reason
    # Nothing decides on a PF's MAC: the PF stays, its MAC unknown.
    assert "the PF is kept" in issue.reason
    assert result.devices[0].mac is None


def test_junk_numa_node_refuses_the_device(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-82599", "0000:04:00.0",
                                       numvfs=1))
    st.write_junk(tree.device_dir("0000:04:00.0") / "numa_node")
    result = sysfs_scan.scan(tree.root)
    # A NUMA node that cannot be read cannot honour a NUMA policy: the PF
    # and the VFs listed with it are refused.
    assert result.devices == ()
    (issue,) = result.errors
    assert issue.path.endswith("0000:04:00.0/numa_node")
    assert "expected -1 or a NUMA node" in issue.reason


def test_junk_vendor_skips_only_that_device(tmp_path):
    tree = build(tmp_path,
                 st.PfLayout("intel-82599", "0000:04:00.0", numvfs=1),
                 st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=1))
    st.write_junk(tree.device_dir("0000:04:00.0") / "vendor")
    result = sysfs_scan.scan(tree.root)
    assert [d.address for d in result.devices] == [
        "0000:3b:00.0", "0000:3b:02.0"]
    (issue,) = result.errors
    assert issue.path.endswith("0000:04:00.0/vendor")
    assert issue.reason.startswith("read b'\\x00\\xffjunk'; expected a "
                                   "16-bit hex vendor id")


def test_pf_without_netdev(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=1, netdev=None))
    pf, vf = sysfs_scan.scan(tree.root).devices
    assert (pf.netdev, pf.mac) == (None, None)
    assert vf.netdev is not None and vf.pf_netdev is None


def test_vf_vanishing_mid_scan_is_skipped_and_reported(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=3))
    st.vanish(tree, "0000:5e:01.1")
    result = sysfs_scan.scan(tree.root)
    assert [d.address for d in result.devices] == [
        "0000:5e:00.0", "0000:5e:01.0", "0000:5e:01.2"]
    (issue,) = result.errors
    assert "0000:5e:01.1" in issue.path


def test_pf_vanishing_mid_scan_does_not_break_the_scan(tmp_path):
    tree = build(tmp_path,
                 st.PfLayout("intel-82599", "0000:04:00.0", numvfs=1),
                 st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=1))
    st.vanish(tree, "0000:04:00.0")
    result = sysfs_scan.scan(tree.root)
    assert [d.address for d in result.devices] == [
        "0000:3b:00.0", "0000:3b:02.0"]
    (issue,) = result.errors
    assert issue.path.endswith("bus/pci/devices/0000:04:00.0")
    assert "cannot be resolved (No such file or directory)" in issue.reason


def test_link_escaping_the_root_is_refused(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=2))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    st.escape_link(tree.device_dir("0000:5e:00.0") / "virtfn1",
                   str(outside / "0000:5e:01.1"))
    result = sysfs_scan.scan(tree.root)
    assert "0000:5e:01.1" not in result.by_address()
    (issue,) = result.errors
    assert issue.path.endswith("0000:5e:00.0/virtfn1")
    assert issue.reason == (
        f"-> '{outside / '0000:5e:01.1'}'; expected ../0000:5e:01.1, VF 1 "
        f"by the PF's sriov_offset 8 and sriov_stride 1; not followed")


@pytest.mark.parametrize("address", ["0001:81:00.0", "10000:01:00.0"])
def test_non_zero_and_vmd_domains(tmp_path, address):
    tree = build(tmp_path, st.PfLayout("intel-e810", address, numvfs=2))
    result = sysfs_scan.scan(tree.root)
    assert result.devices[0].address == address
    assert all(d.address.startswith(address.split(":")[0] + ":")
               for d in result.devices)


def test_domains_sort_numerically(tmp_path):
    tree = build(tmp_path,
                 st.PfLayout("intel-e810", "10000:01:00.0", numvfs=0,
                             netdev="vmd0"),
                 st.PfLayout("intel-e810", "ffff:01:00.0", numvfs=0))
    assert [d.address for d in sysfs_scan.scan(tree.root).devices] == [
        "ffff:01:00.0", "10000:01:00.0"]


@pytest.mark.parametrize("hex_prefix,upper", [(True, False), (False, False),
                                              (True, True), (False, True)])
def test_hex_with_or_without_0x_in_any_case(tmp_path, hex_prefix, upper):
    tree = build(tmp_path, st.PfLayout("mellanox-cx6dx", "0000:5e:00.0",
                                       numvfs=1, hex_prefix=hex_prefix,
                                       upper_hex=upper))
    pf, vf = sysfs_scan.scan(tree.root).devices
    assert (pf.vendor_id, pf.product_id, vf.product_id) == (
        "15b3", "101d", "101e")


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(exception.SysfsRootError,
                       match=r"no-such-dir.*no such directory"):
        sysfs_scan.scan(tmp_path / "no-such-dir")


def test_root_without_pci_bus_is_a_clear_error(tmp_path):
    with pytest.raises(exception.SysfsRootError,
                       match=r"bus/pci/devices cannot be listed"):
        sysfs_scan.scan(tmp_path)


def test_reads_are_bounded(tmp_path):
    tree = build(tmp_path, st.PfLayout("intel-e810", "0000:5e:00.0",
                                       numvfs=1))
    big = tree.device_dir("0000:5e:00.0") / "numa_node"
    big.write_text("1" + " " * 100_000 + "junk")
    # One read of at most 128 bytes: no value is that long, so the file
    # is refused without reading the rest.
    result = sysfs_scan.scan(tree.root)
    assert result.devices == ()
    (issue,) = result.errors
    assert issue.reason.startswith("read b'1     ")


def kernel_sriov(bus: pathlib.Path
                 ) -> dict[str, tuple[int, int, dict[str, int]]]:
    """What the kernel shows, read directly rather than by the scanner:
    PF address -> (sriov_numvfs, sriov_totalvfs, {VF address: index from
    its virtfnN link}) for each device of ``bus`` with sriov_totalvfs
    above zero."""
    pfs = {}
    for dev in sorted(bus.iterdir()):
        total = dev / "sriov_totalvfs"
        if not total.is_file() or int(total.read_text()) == 0:
            continue
        vfs = {os.path.basename(os.readlink(link)):
               int(link.name.removeprefix("virtfn"))
               for link in dev.glob("virtfn*")}
        pfs[dev.name] = (int((dev / "sriov_numvfs").read_text()),
                         int(total.read_text()), vfs)
    return pfs


def test_real_sys_scan_agrees_with_what_the_kernel_shows():
    # This machine's own /sys against a direct reading of it.  Without
    # SR-IOV the scan must still list none of the PCI devices there and
    # find nothing wrong with the kernel's own layout.
    bus = pathlib.Path("/sys/bus/pci/devices")
    if not bus.is_dir():
        pytest.skip("no /sys/bus/pci/devices on this machine")
    pfs = kernel_sriov(bus)
    sriov = set(pfs) | {vf for _, _, vfs in pfs.values() for vf in vfs}
    result = sysfs_scan.scan("/sys")
    assert result.sysfs_root == "/sys"
    listed = {d.address for d in result.devices}
    assert listed <= sriov
    # A problem always concerns an SR-IOV device, and a device left out
    # is one a problem names.
    named = {part for e in result.errors
             for part in pathlib.PurePath(e.path).parts}
    assert all(sriov & set(pathlib.PurePath(e.path).parts)
               for e in result.errors), result.errors
    assert sriov - listed <= named, result.errors
    for dev in result.devices:
        where = bus / dev.address
        vendor = int((where / "vendor").read_text(), 16)
        assert dev.vendor_id == f"{vendor:04x}"
        if dev.dev_type == DEV_TYPE_PF:
            numvfs, totalvfs, vfs = pfs[dev.address]
            assert dev.numvfs in (numvfs, None)
            assert dev.totalvfs in (totalvfs, None)
            assert len(vfs) == numvfs
            continue
        assert dev.dev_type == DEV_TYPE_VF
        assert os.path.realpath(where / "physfn") == os.path.realpath(
            bus / dev.parent_addr)
        assert pfs[dev.parent_addr][2][dev.address] == dev.vf_index
