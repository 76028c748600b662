"""doctor on a real libvirtd: a network stopped and not autostarted,
one rewritten by hand and an orphan are found and repaired; networks
that are not ours are never touched (the host's teardown removes
them)."""

import uuid

import pytest
from agent_on_libvirtd import agent_conf

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import FindingKind

pytestmark = pytest.mark.functional


def test_doctor_repairs_networks_on_a_real_daemon(host_a, tmp_path):
    conf = agent_conf(host_a, tmp_path)
    agent = HostAgent(conf)
    conn = host_a.connect()
    try:
        agent.start()
        # libvirt's own network, and one under our prefix not ours.
        theirs = ["default-nat", "pcipt-handmade"]
        for name in theirs:
            conn.networkDefineXML(
                f"<network><name>{name}</name><forward mode='bridge'>"
                f"<interface dev='vfa1'/></forward></network>")
        inst = str(uuid.uuid4())
        agent.claim(inst, [PortRequest(0, flavor="net1")])
        (port,) = agent.plug(inst)
        orphan = f"pcipt-{uuid.uuid4()}-0"
        conn.networkDefineXML(
            f"<network><name>{orphan}</name><forward mode='bridge'>"
            f"<interface dev='vfa1'/></forward></network>")
        net = conn.networkLookupByName(port.network)
        net.destroy()
        net.setAutostart(0)
        report = agent.doctor()
        assert sorted((f.kind, f.subject) for f in report.findings) == [
            (FindingKind.INACTIVE_NETWORK, f"network {port.network}"),
            (FindingKind.ORPHAN_NETWORK, f"network {orphan}")]
        assert "inactive, not autostarted" in [
            f.problem for f in report.findings
            if f.kind is FindingKind.INACTIVE_NETWORK]
        report = agent.doctor(fix=True)
        assert not report.left
        net = conn.networkLookupByName(port.network)
        assert net.isActive() and net.autostart()
        names = {n.name() for n in conn.listAllNetworks(0)}
        assert orphan not in names and set(theirs) <= names
        # Rewritten by hand: the real daemon's XML, another netdev.
        net.destroy()
        net.undefine()
        conn.networkDefineXML(
            f"<network><name>{port.network}</name><forward "
            f"mode='passthrough'><interface dev='vfa1'/></forward>"
            f"</network>").create()
        (finding,) = agent.doctor(fix=True).findings
        assert finding.kind is FindingKind.DRIFTED_NETWORK
        assert finding.fixed
        assert "dev='vfa0'" in conn.networkLookupByName(
            port.network).XMLDesc(0)
        agent.release(inst)
        assert agent.doctor().findings == ()
    finally:
        conn.close()
        agent.close()
