"""A VF is its PCI address, on a real libvirtd with real netdevs: host
A's veths vfa0 and vfa1 stand in for a physnet1 VF and a physnet2 VF,
and are renamed (their names swapped, with pyroute2) between a claim
and what follows it.  The agent's sysfs tree is renamed alike, as the
kernel's would be; a guest's macvtap is mirrored in it as the upper_
link the kernel shows."""

import os
import pathlib
import uuid

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.hygiene.access import NetlinkAccess
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.netxml import network_xml

pytestmark = pytest.mark.functional

VF1 = "0000:3b:02.0"  # physnet1
VF2 = "0000:5e:01.0"  # physnet2
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=1, netdev="ens1f0",
                vf_netdevs=("vfa0",)),
    st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1, netdev="ens2f0",
                vf_netdevs=("vfa1",)),
))
SPECS = ('{"vendor_id": "8086", "product_id": "154c", '
         '"physical_network": "physnet1"}',
         '{"vendor_id": "8086", "product_id": "1889", '
         '"physical_network": "physnet2"}')
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',
           '{"name": "net2", "physical_network": "physnet2"}')


class Host:
    """Host A's libvirtd and veths, and the agent's sysfs tree naming
    them as the VFs' netdevs."""

    def __init__(self, host, workdir: pathlib.Path) -> None:
        self.host = host
        self.tree = st.build_tree(workdir / "sys", LAYOUT)
        self.conf = host_conf(workdir, device_specs=SPECS, flavors=FLAVORS,
                              libvirt_uri=host.uri)

    def ifindex(self, name: str) -> int:
        with IPRoute(netns=self.host.netns, flags=0) as ipr:
            (index,) = ipr.link_lookup(ifname=name)
            return int(index)

    def swap_names(self) -> None:
        """vfa0 <-> vfa1, on the real veths and in the sysfs tree."""
        with IPRoute(netns=self.host.netns, flags=0) as ipr:
            for old, new in (("vfa0", "vfatmp"), ("vfa1", "vfa0"),
                             ("vfatmp", "vfa1")):
                (index,) = ipr.link_lookup(ifname=old)
                ipr.link("set", index=index, state="down")
                ipr.link("set", index=index, ifname=new)
                ipr.link("set", index=index, state="up")
        self._rename(VF1, "vfatmp")
        self._rename(VF2, "vfa0")
        self._rename(VF1, "vfa1")

    def _rename(self, address: str, new: str) -> None:
        net = self.tree.device_dir(address) / "net"
        (old,) = os.listdir(net)
        os.rename(net / old, net / new)
        links = self.tree.root / "class" / "net"
        (links / old).unlink()
        (links / new).symlink_to(os.path.relpath(net / new, links))

    def mirror_macvtaps(self) -> None:
        """The upper_ links the kernel would show for the host's
        macvtaps, in the tree: under each one's lower netdev."""
        for vf in self.tree.vfs:
            net = self.tree.device_dir(vf.address) / "net"
            for name in os.listdir(net):
                for entry in os.listdir(net / name):
                    if entry.startswith("upper_"):
                        os.unlink(net / name / entry)
        for tap in self.host.macvtaps():
            for vf in self.tree.vfs:
                net = self.tree.device_dir(vf.address) / "net"
                if (net / tap["link"]).is_dir():
                    (net / tap["link"] / f"upper_{tap['ifname']}"
                     ).symlink_to(f"../../../virtual/net/{tap['ifname']}")


@pytest.fixture
def host(host_a, tmp_path):
    return Host(host_a, tmp_path)


def test_a_guest_plugged_after_a_rename_is_on_its_own_vf(host):
    agent = HostAgent(host.conf)
    conn = host.host.connect()
    try:
        agent.start()
        inst = str(uuid.uuid4())
        (alloc,) = agent.claim(inst, [PortRequest(0, flavor="net1",
                                                  mac="52:54:00:00:30:01")])
        assert (alloc.address, alloc.netdev) == (VF1, "vfa0")
        physnet1_vf = host.ifindex("vfa0")
        host.swap_names()
        (port,) = agent.plug(inst)
        assert (port.address, port.netdev) == (VF1, "vfa1")
        dom = conn.createXML(guest_xml("guest-identity",
                                       [port.interface_xml]), 0)
        # The guest's macvtap sits on the physnet1 VF's netdev, by its
        # kernel identity, under whatever name it has now.
        (tap,) = host.host.macvtaps()
        assert tap["link"] == "vfa1"
        assert host.ifindex(tap["link"]) == physnet1_vf
        host.mirror_macvtaps()
        assert agent.doctor().findings == ()
        dom.destroy()
        agent.release(inst)
    finally:
        conn.close()
        agent.close()


def test_a_plug_whose_netdev_cannot_be_resolved_plugs_nothing(host):
    agent = HostAgent(host.conf)
    conn = host.host.connect()
    try:
        agent.start()
        inst = str(uuid.uuid4())
        agent.claim(inst, [PortRequest(0, flavor="net1")])
        os.rename(host.tree.device_dir(VF1) / "net" / "vfa0",
                  host.tree.root / "renaming")
        with pytest.raises(exception.VfNetdevUnresolved, match=VF1):
            agent.plug(inst)
        assert [n.name() for n in conn.listAllNetworks(0)
                if n.name().startswith("pcipt-")] == []
        assert agent.allocations(inst)[0].state == "claimed"
        agent.release(inst)
    finally:
        conn.close()
        agent.close()


def test_doctor_holds_back_the_vf_a_misplugged_guest_sits_on(host):
    # The netdevs are real: their state is read, and restored, through
    # netlink in host A's namespace.
    agent = HostAgent(host.conf,
                      netdev_access=NetlinkAccess(netns=host.host.netns))
    conn = host.host.connect()
    try:
        agent.start()
        inst = str(uuid.uuid4())
        agent.claim(inst, [PortRequest(0, flavor="net1")])
        (port,) = agent.plug(inst)
        # What a plug by a stale name left: the physnet1 port's network
        # holding the physnet2 VF's netdev, and the guest on it.
        net = conn.networkLookupByName(port.network)
        net.destroy()
        net.undefine()
        conn.networkDefineXML(network_xml(
            NetworkSpec(port.network, "vfa1"), "passthrough")).create()
        dom = conn.createXML(guest_xml("guest-misplugged",
                                       [port.interface_xml]), 0)
        host.mirror_macvtaps()
        report = agent.doctor(fix=True)
        (drifted,) = [f for f in report.findings
                      if f.kind is FindingKind.DRIFTED_NETWORK]
        assert f"sits on {VF2}" in drifted.problem
        assert not drifted.fixed and "replug the guest" in drifted.left
        assert "dev='vfa0'" in conn.networkLookupByName(
            port.network).XMLDesc(0)
        other = str(uuid.uuid4())
        with pytest.raises(exception.ClaimFailed):
            agent.claim(other, [PortRequest(0, flavor="net2")])
        # The guest goes: the VF is restored and handed out again.
        dom.destroy()
        host.mirror_macvtaps()
        report = agent.doctor(fix=True)
        assert [(f.kind, f.subject, f.fixed) for f in report.findings] == [
            (FindingKind.VF_NOT_RESTORED, f"device {VF2}", True)]
        (alloc,) = agent.claim(other, [PortRequest(0, flavor="net2")])
        assert alloc.address == VF2
        agent.release(other)
        agent.release(inst)
    finally:
        conn.close()
        agent.close()
