"""HostAgent on a real libvirtd: a TCG guest boots with the interfaces
plug() returned, and libvirt puts a macvtap on exactly the claimed VFs."""

import uuid

import pytest
from agent_on_libvirtd import agent_conf

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.fixtures.guest import guest_xml

pytestmark = pytest.mark.functional


def test_boot_plug_release_on_a_real_daemon(host_a, tmp_path):
    # The sysfs tree names host A's veths as the VFs' netdevs.
    conf = agent_conf(host_a, tmp_path)
    agent = HostAgent(conf)
    try:
        agent.start()
        inst = str(uuid.uuid4())
        allocs = agent.claim(inst, [
            PortRequest(0, flavor="net1", mac="52:54:00:00:20:01"),
            PortRequest(1, flavor="net1", mac="52:54:00:00:20:02")])
        plugged = agent.plug(inst)
        conn = host_a.connect()
        dom = conn.createXML(guest_xml("guest-agent",
                                       [p.interface_xml for p in plugged]),
                             0)
        taps = host_a.macvtaps()
        assert sorted(t["link"] for t in taps) == sorted(
            a.netdev for a in allocs) == ["vfa0", "vfa1"]
        live = dom.XMLDesc(0)
        for p in plugged:
            assert p.network in live
        dom.destroy()
        assert host_a.macvtaps() == []
        agent.release(inst)
        assert [n.name() for n in conn.listAllNetworks(0)
                if n.name().startswith("pcipt-")] == []
        assert agent.allocations() == []
        conn.close()
    finally:
        agent.close()
