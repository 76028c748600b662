"""A VF is its PCI address, never its netdev's name: plug, an incoming
migration's prepare and doctor read the name from sysfs when they use
it.  The host's two VFs sit on two physical networks; their netdevs are
renamed by changing the net/ entries of the sysfs tree (and class/net),
as udev renames them, between a claim and what follows it."""

import os
import pathlib

import pytest
from lxml import etree

from pci_passthrough import PortRequest, exception
from pci_passthrough.discovery.netdev_lookup import live_netdev
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.netxml import network_xml

VF1 = "0000:3b:02.0"  # physnet1, netdev ens1f0v0
VF2 = "0000:5e:01.0"  # physnet2, netdev ens2f0v0
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=1, netdev="ens1f0"),
    st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1, netdev="ens2f0"),
))
SPECS = ('{"vendor_id": "8086", "product_id": "154c", '
         '"physical_network": "physnet1"}',
         '{"vendor_id": "8086", "product_id": "1889", '
         '"physical_network": "physnet2"}')
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',
           '{"name": "net2", "physical_network": "physnet2"}')
NET1 = [PortRequest(0, flavor="net1")]
NET2 = [PortRequest(0, flavor="net2")]


@pytest.fixture
def host(tmp_path):
    with AgentHost(tmp_path / "h", LAYOUT, device_specs=SPECS,
                   flavors=FLAVORS, in_memory_netdevs=True) as h:
        assert {d.address: d.netdev for d in h.tree.vfs} == {
            VF1: "ens1f0v0", VF2: "ens2f0v0"}
        yield h


def vf_dir(host, address) -> pathlib.Path:
    return host.tree.device_dir(address)


def rename(host, address, new):
    """Rename the VF's netdev as the kernel shows it: its net/ entry and
    its class/net link."""
    root = host.tree.root
    (old,) = os.listdir(vf_dir(host, address) / "net")
    os.rename(vf_dir(host, address) / "net" / old,
              vf_dir(host, address) / "net" / new)
    (root / "class" / "net" / old).unlink()
    (root / "class" / "net" / new).symlink_to(os.path.relpath(
        vf_dir(host, address) / "net" / new, root / "class" / "net"))


def swap_names(host):
    """ens1f0v0 <-> ens2f0v0: each VF now has the other's name."""
    rename(host, VF1, "tmp0")
    rename(host, VF2, "ens1f0v0")
    rename(host, VF1, "ens2f0v0")


def sit_on(host, address, upper="macvtap0"):
    """A guest's macvtap on the VF's netdev: the upper_ link sysfs
    shows in the netdev's directory."""
    (name,) = os.listdir(vf_dir(host, address) / "net")
    link = vf_dir(host, address) / "net" / name / f"upper_{upper}"
    link.symlink_to(f"../../../../../../virtual/net/{upper}")
    return link


def network_netdevs(host, name):
    xml = etree.fromstring(host.conn.networkLookupByName(name).XMLDesc(0))
    return [i.get("dev") for i in xml.iterfind("forward/interface")]


def our_networks(host):
    return sorted(n.name() for n in host.conn.listAllNetworks(0)
                  if n.name().startswith("pcipt-"))


# -- the lookup -----------------------------------------------------------

def test_the_lookup_follows_a_rename(host):
    root = host.tree.root
    assert live_netdev(root, VF1).netdev == "ens1f0v0"
    swap_names(host)
    assert live_netdev(root, VF1).netdev == "ens2f0v0"
    assert live_netdev(root, VF2).netdev == "ens1f0v0"


def test_the_lookup_refuses_what_is_not_one_netdev(host, tmp_path):
    root = host.tree.root
    net = vf_dir(host, VF1) / "net"
    (net / "ens1f0v0").rename(tmp_path / "away")
    assert "is empty" in live_netdev(root, VF1).problem
    (net / "a").mkdir()
    (net / "b").mkdir()
    found = live_netdev(root, VF1)
    assert found.netdev is None
    assert "holds 2 entries ('a', 'b')" in found.problem
    (net / "a").rmdir()
    (net / "b").rmdir()
    (net / "bad:name").mkdir()
    assert "not a netdev name" in live_netdev(root, VF1).problem
    (net / "bad:name").rmdir()
    # A link where the netdev's directory should be is not followed.
    (net / "eth0").symlink_to(tmp_path / "away")
    assert "is not a directory" in live_netdev(root, VF1).problem
    (net / "eth0").unlink()
    net.rmdir()
    net.symlink_to(tmp_path)
    assert "symbolic link" in live_netdev(root, VF1).problem
    net.unlink()
    assert "is missing" in live_netdev(root, VF1).problem


def test_the_lookup_never_leaves_the_root(host, tmp_path):
    root = host.tree.root
    outside = tmp_path / "elsewhere" / VF1
    (outside / "net" / "evil0").mkdir(parents=True)
    bus = root / "bus" / "pci" / "devices" / VF1
    bus.unlink()
    bus.symlink_to(outside)
    found = live_netdev(root, VF1)
    assert found.netdev is None
    assert "not followed" in found.problem
    assert live_netdev(root, "../../x").netdev is None
    assert "is gone" in live_netdev(root, "0000:99:00.0").problem


# -- plug and prepare -----------------------------------------------------

def test_a_plug_after_a_rename_holds_the_vfs_netdev_now(host):
    agent = host.new_agent()
    inst = new_uuid()
    (alloc,) = agent.claim(inst, NET1)
    assert (alloc.address, alloc.netdev) == (VF1, "ens1f0v0")
    swap_names(host)
    (port,) = agent.plug(inst)
    # The physnet1 VF, under its new name: never the physnet2 VF that
    # took its old one.
    assert (port.address, port.netdev) == (VF1, "ens2f0v0")
    assert network_netdevs(host, port.network) == ["ens2f0v0"]
    # The tracker and the ledger know the name now.
    assert agent.allocations(inst)[0].netdev == "ens2f0v0"
    assert agent.doctor().findings == ()
    # The VF plugged is journalled under its own name.
    assert agent.vf_journals()[VF1].netdev == "ens2f0v0"


@pytest.mark.parametrize("damage,found", [
    ("empty", "is empty"), ("two", "holds 2 entries")])
def test_a_plug_whose_netdev_cannot_be_resolved_plugs_nothing(
        host, tmp_path, damage, found):
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, NET1)
    net = vf_dir(host, VF1) / "net"
    if damage == "empty":
        (net / "ens1f0v0").rename(tmp_path / "away")
    else:
        (net / "ens1f0v1").mkdir()
    with pytest.raises(exception.VfNetdevUnresolved) as err:
        agent.plug(inst)
    text = str(err.value)
    for part in (inst, "port 0", VF1, found):
        assert part in text
    assert our_networks(host) == []
    (alloc,) = agent.allocations(inst)
    assert alloc.state == PortState.CLAIMED
    assert agent.vf_journals() == {}


def test_an_incoming_migration_plugs_the_vfs_netdev_now(host):
    agent = host.new_agent()
    inst = new_uuid()
    swap_names(host)
    (port,) = agent.prepare_incoming_migration(inst, NET1)
    assert (port.address, port.netdev) == (VF1, "ens2f0v0")
    assert network_netdevs(host, port.network) == ["ens2f0v0"]


def test_an_incoming_migration_whose_netdev_cannot_be_resolved_is_undone(
        host, tmp_path):
    agent = host.new_agent()
    inst = new_uuid()
    (vf_dir(host, VF1) / "net" / "ens1f0v0").rename(tmp_path / "away")
    with pytest.raises(exception.VfNetdevUnresolved, match=VF1):
        agent.prepare_incoming_migration(inst, NET1)
    assert agent.allocations() == []
    assert our_networks(host) == []


# -- doctor ---------------------------------------------------------------

def misplug(host, agent):
    """A physnet1 instance whose network holds the physnet2 VF's netdev,
    with a guest's macvtap on it: what a plug by a stale name left."""
    inst = new_uuid()
    agent.claim(inst, NET1)
    (port,) = agent.plug(inst)
    net = host.conn.networkLookupByName(port.network)
    net.destroy()
    net.undefine()
    host.conn.networkDefineXML(network_xml(
        NetworkSpec(port.network, "ens2f0v0"), "passthrough")).create()
    return inst, port, sit_on(host, VF2)


def test_doctor_holds_back_the_vf_a_misplugged_guest_sits_on(host):
    agent = host.new_agent()
    inst, port, macvtap = misplug(host, agent)
    (drifted,) = [f for f in agent.doctor().findings
                  if f.kind is FindingKind.DRIFTED_NETWORK]
    assert f"sits on {VF2}, not on its claimed VF {VF1}" in drifted.problem
    assert "macvtap0" in drifted.problem
    assert f"instance {inst} port 0 must be replugged" in drifted.repair
    report = agent.doctor(fix=True)
    (drifted,) = [f for f in report.findings
                  if f.kind is FindingKind.DRIFTED_NETWORK]
    # The network is rewritten for a replug, but the guest is still on
    # the physnet2 VF: left, saying so.
    assert not drifted.fixed
    assert "replug the guest" in drifted.left
    assert network_netdevs(host, port.network) == ["ens1f0v0"]
    with pytest.raises(exception.ClaimFailed):
        agent.claim(new_uuid(), NET2)
    # Again: still held back, and left to the operator.
    report = agent.doctor(fix=True)
    (held,) = [f for f in report.findings
               if f.kind is FindingKind.VF_NOT_RESTORED]
    assert held.subject == f"device {VF2}" and not held.fixed
    assert "macvtap0" in held.problem
    with pytest.raises(exception.ClaimFailed):
        agent.claim(new_uuid(), NET2)
    # The guest replugged: nothing sits on the VF, which is restored and
    # handed out again.
    macvtap.unlink()
    sit_on(host, VF1)
    report = agent.doctor(fix=True)
    assert [(f.kind, f.fixed) for f in report.findings] == [
        (FindingKind.VF_NOT_RESTORED, True)]
    (alloc,) = agent.claim(new_uuid(), NET2)
    assert alloc.address == VF2


def test_doctor_rewrites_a_network_renamed_under_its_guest(host):
    # Renamed after the plug: the guest sits on its own VF, nothing on
    # the VF whose name the network holds now.
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, NET1)
    (port,) = agent.plug(inst)
    sit_on(host, VF1)
    swap_names(host)
    report = agent.doctor(fix=True)
    drifted, renamed = report.findings
    assert drifted.kind is FindingKind.DRIFTED_NETWORK and drifted.fixed
    assert renamed.kind is FindingKind.NETDEV_CHANGED and renamed.fixed
    assert "nothing sits on ens1f0v0 now" in drifted.problem
    assert network_netdevs(host, port.network) == ["ens2f0v0"]
    (alloc,) = agent.claim(new_uuid(), NET2)
    assert alloc.address == VF2


def test_doctor_reports_a_claimed_vf_whose_netdev_cannot_be_resolved(
        host, tmp_path):
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, NET1)
    (port,) = agent.plug(inst)
    net = vf_dir(host, VF1) / "net"
    (net / "ens1f0v0").rename(tmp_path / "away")
    (net / "x").mkdir()
    (net / "y").mkdir()
    report = agent.doctor(fix=True)
    (found,) = report.findings
    assert found.subject == f"device {VF1}" and not found.fixed
    assert "holds 2 entries" in found.problem and inst in found.problem
    # Nothing is rewritten from a name that cannot be read.
    assert network_netdevs(host, port.network) == ["ens1f0v0"]
