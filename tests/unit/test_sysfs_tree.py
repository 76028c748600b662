"""The sysfs tree builder itself: the kernel's layout, with real links."""

import os
import stat

import pytest

from pci_passthrough.config import devspec
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st


@pytest.mark.parametrize("profile", sorted(st.PROFILES))
def test_every_profile_builds_the_kernel_layout(tmp_path, profile):
    prof = st.PROFILES[profile]
    tree = st.build_tree(tmp_path, st.HostLayout((
        st.PfLayout(profile, "0000:3b:00.0", numvfs=2),)))
    pf_dir = tree.device_dir("0000:3b:00.0")
    bus_link = tmp_path / "bus" / "pci" / "devices" / "0000:3b:00.0"
    assert bus_link.is_symlink() and bus_link.resolve() == pf_dir
    assert (pf_dir / "vendor").read_text() == f"0x{prof.vendor_id:04x}\n"
    # sriov_vf_device is printed with %x: no 0x prefix.
    assert (pf_dir / "sriov_vf_device").read_text() == \
        f"{prof.vf_device_id:x}\n"
    assert os.readlink(pf_dir / "driver").endswith(
        f"bus/pci/drivers/{prof.pf_driver}")
    vf0 = st.vf_address("0000:3b:00.0", prof.sriov_offset,
                        prof.sriov_stride, 0)
    assert os.readlink(pf_dir / "virtfn0") == f"../{vf0}"
    assert os.readlink(tree.device_dir(vf0) / "physfn") == "../0000:3b:00.0"
    assert not (tree.device_dir(vf0) / "sriov_totalvfs").exists()
    netdev = tree.devices[vf0].netdev
    assert (tmp_path / "class" / "net" / netdev).resolve() == \
        tree.device_dir(vf0) / "net" / netdev


def test_vf_addresses_follow_offset_and_stride():
    # 82599: offset 128, stride 2 from 04:00.0 gives 04:10.0, 04:10.2.
    assert [st.vf_address("0000:04:00.0", 128, 2, i) for i in range(3)] == [
        "0000:04:10.0", "0000:04:10.2", "0000:04:10.4"]
    # Crossing into the next bus.
    assert st.vf_address("0000:04:00.0", 8, 1, 255) == "0000:05:00.7"


def test_explicit_vf_netdev_names(tmp_path):
    tree = st.build_tree(tmp_path, st.HostLayout((
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=2,
                    vf_netdevs=("vfa0", "vfa1")),)))
    assert [v.netdev for v in tree.vfs] == ["vfa0", "vfa1"]
    assert [d.netdev for d in sysfs_scan.scan(tmp_path).devices[1:]] == [
        "vfa0", "vfa1"]


def test_breakers_make_real_faults(tmp_path):
    tree = st.build_tree(tmp_path, st.HostLayout((
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1),)))
    target = tree.device_dir("0000:5e:00.0") / "numa_node"
    st.make_unreadable(target)
    with pytest.raises(IsADirectoryError):
        target.read_text()
    vf = tree.vfs[0].address
    st.vanish(tree, vf)
    assert (tree.device_dir("0000:5e:00.0") / "virtfn0").is_symlink()
    assert not (tree.device_dir("0000:5e:00.0") / "virtfn0").exists()


@pytest.mark.parametrize("layout", [demo_hosts.DEMO_HOST_A,
                                    demo_hosts.DEMO_HOST_B])
def test_demo_hosts_scan_as_described(tmp_path, layout):
    st.build_tree(tmp_path, layout)
    result = sysfs_scan.scan(tmp_path)
    specs = devspec.parse_device_specs(demo_hosts.DEMO_DEVICE_SPECS)
    vfs = [d for d in result.devices if d.is_vf]
    assert len(vfs) == 7 and result.errors == ()
    assert sum(1 for v in vfs if v.driver == "vfio-pci") == 1
    tagged = [specs.match(v) for v in vfs]
    assert sum(1 for t in tagged if t and t.get("group") == "grp1") == 3
    assert all(t is not None for t in tagged)


@pytest.mark.parametrize("kind,check", [
    ("fifo", stat.S_ISFIFO), ("socket", stat.S_ISSOCK),
    ("char-device", stat.S_ISCHR)])
def test_make_special_replaces_a_file_or_link(tmp_path, kind, check):
    tree = st.build_tree(tmp_path, st.HostLayout((
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1),)))
    for path in (tree.device_dir("0000:5e:00.0") / "numa_node",
                 tree.device_dir("0000:5e:00.0") / "driver"):
        try:
            st.make_special(path, kind)
        except PermissionError:
            pytest.skip("making a device node needs CAP_MKNOD")
        assert check(path.lstat().st_mode)
    with pytest.raises(ValueError, match="unknown kind 'pipe'"):
        st.make_special(tmp_path / "x", "pipe")


def test_relink_and_rename_netdev(tmp_path):
    tree = st.build_tree(tmp_path, st.HostLayout((
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1,
                    netdev="ens1"),)))
    vf = tree.vfs[0]
    st.rename_netdev(tree, vf.address, b"\xffname")
    raw = os.fsencode(tree.root / "class" / "net") + b"/\xffname"
    assert os.path.isdir(raw)
    assert os.readlink(raw).endswith(
        os.fsencode(f"{vf.address}/net/") + b"\xffname")
    assert os.listdir(vf.path / "net") == [os.fsdecode(b"\xffname")]
    link = tree.device_dir("0000:5e:00.0") / "virtfn0"
    st.relink(link, "../nowhere")
    assert os.readlink(link) == "../nowhere"
    st.relink(tree.device_dir("0000:5e:00.0") / "vendor", "/etc")
    assert (tree.device_dir("0000:5e:00.0") / "vendor").is_symlink()
