"""HostAgent.doctor(): each finding, what --fix repairs, what it leaves
and why; against libvirt's test driver and a generated sysfs tree."""

import os

import libvirt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, Clock
from pci_passthrough.fixtures.simulated_host import simulated_host
from pci_passthrough.fixtures.standard_host import INTEL_DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import INTEL_FLAVORS as FLAVORS
from pci_passthrough.fixtures.standard_host import INTEL_LAYOUT as LAYOUT
from pci_passthrough.hygiene import NetdevState
from pci_passthrough.network.names import parse_network_name

PREFIX = "pcipt-"
INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"


class Host(AgentHost):
    def __init__(self, workdir):
        super().__init__(workdir, LAYOUT, device_specs=SPECS,
                         flavors=FLAVORS, clock=Clock(1_000_000.0),
                         in_memory_netdevs=True)
        # libvirt's own network, as on a real host: never ours to touch.
        self.conn.networkDefineXML(
            "<network><name>default</name><forward mode='nat'/>"
            "<bridge name='virbr0'/><ip address='192.168.122.1' "
            "netmask='255.255.255.0'/></network>").create()
        self.agent = self.new_agent()

    def net(self, name):
        return self.conn.networkLookupByName(name)

    def names(self):
        return sorted(n.name() for n in self.conn.listAllNetworks(0))

    def plugged(self, inst=INST, ports=1):
        self.agent.claim(inst, [PortRequest(i, flavor="net1")
                                for i in range(ports)])
        return self.agent.plug(inst)


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h


def kinds(report):
    return [(f.kind, f.subject) for f in report.findings]


def test_a_healthy_host_is_clean_and_default_is_never_touched(host):
    host.plugged()
    assert "default" in host.names()
    report = host.agent.doctor(fix=True)
    assert report.findings == () and report.left == ()
    assert report.as_dict()["clean"] is True
    assert "default" in host.names()


def test_orphan_networks_are_found_and_deleted_others_never(host):
    orphan = f"{PREFIX}{OTHER}-0"
    kept = ["default", f"{PREFIX}other", f"{PREFIX}{OTHER}-0-copy"]
    for name in [orphan, *kept[1:]]:
        host.conn.networkDefineXML(
            f"<network><name>{name}</name><forward mode='bridge'>"
            f"<interface dev='eth0'/></forward></network>").create()
    report = host.agent.doctor()
    assert kinds(report) == [(FindingKind.ORPHAN_NETWORK,
                              f"network {orphan}")]
    assert orphan in host.names()  # without --fix nothing changes
    fixed = host.agent.doctor(fix=True)
    assert [f.fixed for f in fixed.findings] == [True]
    assert sorted(host.names()) == sorted(kept)
    assert host.agent.doctor().findings == ()


def test_missing_inactive_and_drifted_networks_are_restored(host):
    ports = host.plugged(ports=3)
    missing, inactive, drifted = (p.network for p in ports)
    net = host.net(missing)
    net.destroy()
    net.undefine()
    host.net(inactive).destroy()
    # Rewritten by hand: another netdev and a VLAN.
    net = host.net(drifted)
    net.destroy()
    net.undefine()
    host.conn.networkDefineXML(
        f"<network><name>{drifted}</name><forward mode='passthrough'>"
        f"<interface dev='eth9'/></forward><vlan><tag id='7'/></vlan>"
        f"</network>").create()
    report = host.agent.doctor()
    by_kind = {f.kind: f for f in report.findings}
    assert set(by_kind) == {FindingKind.MISSING_NETWORK,
                            FindingKind.INACTIVE_NETWORK,
                            FindingKind.DRIFTED_NETWORK}
    assert by_kind[FindingKind.MISSING_NETWORK].subject == \
        f"network {missing}"
    assert by_kind[FindingKind.INACTIVE_NETWORK].problem == "inactive"
    problem = by_kind[FindingKind.DRIFTED_NETWORK].problem
    assert f"holds eth9 instead of {ports[2].netdev}" in problem
    assert "VLAN 7 instead of none" in problem
    report = host.agent.doctor(fix=True)
    assert all(f.fixed for f in report.findings) and not report.left
    for port in ports:
        net = host.net(port.network)
        assert net.isActive() and net.autostart()
        assert f"dev='{port.netdev}'" in net.XMLDesc(0)
    assert host.agent.doctor().findings == ()


def test_a_mode_drift_is_found(host):
    (port,) = host.plugged()
    net = host.net(port.network)
    net.destroy()
    net.undefine()
    host.conn.networkDefineXML(
        f"<network><name>{port.network}</name><forward mode='bridge'>"
        f"<interface dev='{port.netdev}'/></forward></network>").create()
    (finding,) = host.agent.doctor(fix=True).findings
    assert finding.kind is FindingKind.DRIFTED_NETWORK
    assert "forward mode bridge instead of passthrough" in finding.problem
    assert finding.fixed
    assert "mode='passthrough'" in host.net(port.network).XMLDesc(0)


def test_a_vanished_device_is_reported_and_left(host):
    (port,) = host.plugged()
    st.vanish(host.tree, port.address)
    report = host.agent.doctor(fix=True)
    gone = [f for f in report.findings
            if f.kind is FindingKind.DEVICE_GONE]
    assert [f.subject for f in gone] == [f"device {port.address}"]
    assert not gone[0].fixed and "release the instance" in gone[0].left
    assert report.left


def test_a_renamed_netdev_is_recorded_and_its_network_follows(host):
    (port,) = host.plugged()
    dev = host.tree.devices[port.address].path
    new = "ens1f0v9"
    os.rename(dev / "net" / port.netdev, dev / "net" / new)
    cls = host.tree.root / "class" / "net"
    os.unlink(cls / port.netdev)
    os.symlink(os.path.relpath(dev / "net" / new, cls), cls / new)
    report = host.agent.doctor()
    assert sorted(f.kind for f in report.findings) == sorted([
        FindingKind.NETDEV_CHANGED, FindingKind.DRIFTED_NETWORK])
    report = host.agent.doctor(fix=True)
    assert not report.left
    assert host.agent.allocations()[0].netdev == new
    assert f"dev='{new}'" in host.net(port.network).XMLDesc(0)
    assert host.agent.doctor().findings == ()


def test_an_unexplained_macvtap_on_a_free_vf_is_reported_not_touched(
        host):
    free = host.tree.vfs[0]
    upper = host.tree.root / "class" / "net" / free.netdev / \
        "upper_macvtap7"
    os.symlink("../macvtap7", upper)
    report = host.agent.doctor(fix=True)
    (finding,) = report.findings
    assert finding.kind is FindingKind.UPPER_DEVICE
    assert finding.subject == f"device {free.address}"
    assert "macvtap7" in finding.problem and not finding.fixed
    assert os.path.islink(upper)


def test_a_macvtap_explained_by_an_orphan_network_is_the_orphan(host):
    free = host.tree.vfs[0]
    orphan = f"{PREFIX}{OTHER}-0"
    host.conn.networkDefineXML(
        f"<network><name>{orphan}</name><forward mode='passthrough'>"
        f"<interface dev='{free.netdev}'/></forward></network>").create()
    os.symlink("../macvtap7", host.tree.root / "class" / "net" /
               free.netdev / "upper_macvtap7")
    assert kinds(host.agent.doctor()) == [
        (FindingKind.ORPHAN_NETWORK, f"network {orphan}")]


def test_a_vf_left_with_a_guest_mac_is_restored_before_reuse(host):
    (port,) = host.plugged()
    before = host.netdevs.states[port.netdev]
    # The guest changed the VF's MAC; the restore at release fails.
    host.netdevs.states[port.netdev] = NetdevState(
        netdev=port.netdev, mac="52:54:00:12:34:56", mtu=9000, up=True)
    saved, host.netdevs.states = host.netdevs.states, {}
    host.agent.release(INST)
    host.netdevs.states = saved
    explanation = host.agent.explain("net1")
    verdict = {d.address: d for d in explanation.devices}[port.address]
    assert not verdict.match and "not restored yet" in verdict.reason
    (finding,) = host.agent.doctor().findings
    assert finding.kind is FindingKind.VF_NOT_RESTORED
    assert "mac: '52:54:00:12:34:56'" in finding.problem
    assert "mtu: 9000" in finding.problem
    assert host.agent.doctor(fix=True).findings[0].fixed
    assert host.netdevs.states[port.netdev] == before
    assert host.agent.doctor().findings == ()
    verdict = {d.address: d for d in host.agent.explain("net1").devices}
    assert verdict[port.address].match


def test_release_restores_the_journal_and_forgets_it(host):
    (port,) = host.plugged()
    before = host.netdevs.states[port.netdev]
    host.netdevs.states[port.netdev] = NetdevState(
        netdev=port.netdev, mac="52:54:00:12:34:56", mtu=1500, up=False)
    host.agent.release(INST)
    assert host.netdevs.states[port.netdev] == before
    assert host.agent.vf_journals() == {}


def test_an_expired_incoming_lease_is_fixed_a_stale_outgoing_left(host):
    host.agent.prepare_incoming_migration(INST, [PortRequest(0, "net1")])
    host.plugged(OTHER)
    host.agent.begin_outgoing_migration(OTHER)
    host.clock.now += 1799
    assert host.agent.doctor().findings == ()
    host.clock.now += 1
    report = host.agent.doctor()
    assert kinds(report) == [
        (FindingKind.LEASE_EXPIRED, f"instance {INST}"),
        (FindingKind.STALE_OUTGOING, f"instance {OTHER}")]
    report = host.agent.doctor(fix=True)
    assert [f.fixed for f in report.findings] == [True, False]
    assert "abort_outgoing_migration" in report.findings[1].left
    assert host.agent.allocations(INST) == []
    assert not any(INST in n for n in host.names())


PF = "0000:3b:00.0"


def test_an_unhealthy_pf_is_reported_and_left_to_the_operator(host):
    host.plugged()
    pf = host.tree.devices[PF]
    operstate = pf.path / "net" / "ens1f0" / "operstate"
    operstate.write_text("lowerlayerdown\n")
    report = host.agent.doctor(fix=True)
    (finding,) = report.findings
    assert (finding.kind, finding.subject) == (FindingKind.PF_UNHEALTHY,
                                               f"device {PF}")
    assert finding.problem == (
        f"netdev ens1f0 lost carrier (operstate lowerlayerdown): 2 free "
        f"VF(s) of it cannot be claimed, nor the PF itself; instance(s) "
        f"{INST} hold claims on it (kept, carrying no traffic)")
    assert "switch port of netdev ens1f0" in finding.repair
    assert not finding.fixable and not finding.fixed
    assert finding.left.startswith("not safe to repair automatically")
    assert operstate.read_text() == "lowerlayerdown\n"  # left alone
    # The driver unbound too, the instance gone: another why, another
    # repair, and no claim held.
    driver = pf.path / "driver"
    target = os.readlink(driver)
    driver.unlink()
    host.agent.release(INST)
    (finding,) = host.agent.doctor().findings
    assert finding.problem == (
        "has no driver (unbound): 3 free VF(s) of it cannot be claimed, "
        "nor the PF itself; no claim is held on it")
    assert finding.repair.startswith(
        f"bind the PF to its network driver again (echo {PF} > ")
    os.symlink(target, driver)
    operstate.write_text("up\n")
    assert host.agent.doctor().findings == ()


def test_the_report_as_json(host):
    host.conn.networkDefineXML(
        f"<network><name>{PREFIX}{OTHER}-3</name><forward mode='bridge'>"
        f"<interface dev='eth0'/></forward></network>")
    data = host.agent.doctor().as_dict()
    assert data == {"fix": False, "clean": False, "findings": [{
        "kind": "orphan-network", "subject": f"network {PREFIX}{OTHER}-3",
        "problem": f"instance {OTHER} port 3 holds no claim here",
        "repair": "delete the network", "fixable": True, "fixed": False,
        "left": None}]}


# -- hostile names ----------------------------------------------------------

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "25"))
NAME_PARTS = hst.sampled_from([
    PREFIX, "pcipt", "PCIPT-", "default", OTHER, OTHER.upper(), INST,
    "-0", "-1", "-01", "-9999", "-10000", "-", "x", " ", ".", "-copy"])
# Whole names of ours and near misses: upper case, port 10000, a tail.
ORPHAN_NAMES = hst.builds(
    lambda u, port, upper, tail: (
        f"{PREFIX}{str(u).upper() if upper else u}-{port}{tail}"),
    hst.uuids(), hst.integers(0, 10001), hst.booleans(),
    hst.sampled_from(["", "", "", "-0", "x", " "]))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(names=hst.lists(hst.one_of(
    ORPHAN_NAMES,
    hst.lists(NAME_PARTS, min_size=1, max_size=4).map("".join)),
    max_size=5, unique=True))
def test_fix_deletes_exactly_the_orphans_that_parse_whole(host, names):
    (port,) = host.agent.allocations() or [None]
    if port is None:
        host.plugged()
    mine = host.agent.network_name(INST, 0)
    for net in host.conn.listAllNetworks(0):
        if net.name() not in ("default", mine):
            if net.isActive():
                net.destroy()
            net.undefine()
    made = set()
    for name in names:
        if name in ("default", mine) or not name.strip() or "/" in name:
            continue
        try:
            host.conn.networkDefineXML(
                f"<network><name>{name}</name><forward mode='bridge'>"
                f"<interface dev='eth0'/></forward></network>")
        except libvirt.libvirtError:
            continue  # a name libvirt itself refuses
        made.add(name)
    orphans = {n for n in made
               if parse_network_name(PREFIX, n) is not None}
    report = host.agent.doctor(fix=True)
    assert {f.subject for f in report.findings} == {
        f"network {n}" for n in orphans}
    assert set(host.names()) == (made - orphans) | {"default", mine}


def test_a_driver_without_network_status_is_examined_by_its_listing(
        tmp_path):
    from pci_passthrough.network.noop import NoopDriver

    conf, _ = simulated_host(tmp_path / "n", LAYOUT, device_specs=SPECS,
                             flavors=FLAVORS)
    driver = NoopDriver(conf)
    agent = HostAgent(conf, network_driver=driver)
    try:
        agent.start()
        agent.claim(INST, [PortRequest(0, flavor="net1")])
        (port,) = agent.plug(INST)
        assert agent.doctor().findings == ()
        driver.delete_network(port.network)
        (finding,) = agent.doctor(fix=True).findings
        assert finding.kind is FindingKind.MISSING_NETWORK
        assert finding.fixed and port.network in driver.list_networks(
            PREFIX)
    finally:
        agent.close()
