"""HostAgent's lifecycle on two simulated hosts: libvirt's test driver
(one independent test:///ABS/PATH.xml each), a generated sysfs tree and a
ledger per host, in one process."""


import pytest
from lxml import etree

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.standard_host import DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import FLAVORS
from pci_passthrough.fixtures.standard_host import LAYOUT as HOST_A
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.network.netxml import parse_network

# A second host: the same NICs in other slots, as live migration meets.
HOST_B = st.HostLayout((
    st.PfLayout("intel-x710", "0000:af:00.0", numvfs=4, netdev="ens5f0"),
    st.PfLayout("mellanox-cx6dx", "0000:d8:00.0", numvfs=2,
                netdev="ens6f0np0", switchdev=True),
))
PREFIX = "pcipt-"



class SimHost(AgentHost):
    def __init__(self, workdir, layout):
        super().__init__(workdir, layout, device_specs=SPECS,
                         flavors=FLAVORS)
        self.agent = self.new_agent()

    def networks(self) -> dict[str, str]:
        """Network name -> the netdev it holds, for prefixed networks."""
        found = {}
        for net in self.conn.listAllNetworks(0):
            if net.name().startswith(PREFIX):
                parsed = parse_network(net.XMLDesc(0))
                assert len(parsed.netdevs) == 1
                assert net.isActive() and net.autostart()
                found[net.name()] = parsed.netdevs[0]
        return found

    def netdev_of(self, address: str) -> str:
        return self.tree.devices[address].netdev  # type: ignore[return-value]


@pytest.fixture
def hosts(tmp_path):
    with SimHost(tmp_path / "hostA", HOST_A) as a, \
            SimHost(tmp_path / "hostB", HOST_B) as b:
        yield a, b


PORTS = [PortRequest(0, flavor="net1", mac="52:54:00:00:00:01"),
         PortRequest(1, flavor="grp1", mac="52:54:00:00:00:02")]


def boot(host: SimHost, inst: str, ports=PORTS) -> str:
    host.agent.claim(inst, ports)
    plugged = host.agent.plug(inst)
    xml = guest_xml(f"guest-{inst[:8]}", [p.interface_xml for p in plugged])
    host.conn.defineXML(xml).create()
    return xml


def test_plug_defines_one_network_per_port_holding_the_claimed_vf(hosts):
    a, _ = hosts
    inst = new_uuid()
    allocs = a.agent.claim(inst, PORTS)
    assert [x.network for x in allocs] == [f"{PREFIX}{inst}-0",
                                           f"{PREFIX}{inst}-1"]
    plugged = a.agent.plug(inst)
    assert [p.network for p in plugged] == [f"{PREFIX}{inst}-0",
                                            f"{PREFIX}{inst}-1"]
    assert a.networks() == {p.network: a.netdev_of(al.address)
                            for p, al in zip(plugged, allocs, strict=True)}
    iface = etree.fromstring(plugged[0].interface_xml)
    assert iface.get("type") == "network"
    assert iface.find("source").get("network") == plugged[0].network
    assert iface.find("mac").get("address") == "52:54:00:00:00:01"
    assert {x.state for x in a.agent.allocations(inst)} == {"plugged"}
    # Idempotent: again, the same answer and no change.
    assert a.agent.plug(inst) == plugged
    assert a.agent.claim(inst, PORTS) == a.agent.allocations(inst)


def test_live_migration_story_with_unchanged_domain_xml(hosts):
    a, b = hosts
    inst = new_uuid()
    xml = boot(a, inst)
    on_a = a.networks()
    plugged_b = b.agent.prepare_incoming_migration(inst, PORTS)
    on_b = b.networks()
    # Same names on both hosts, each holding its own host's VF.
    assert set(on_a) == set(on_b)
    assert set(on_a.values()).isdisjoint(on_b.values())
    assert {a.netdev_of(x.address) for x in a.agent.allocations(inst)} == \
        set(on_a.values())
    assert {b.netdev_of(x.address) for x in b.agent.allocations(inst)} == \
        set(on_b.values())
    assert [p.interface_xml for p in plugged_b] == [
        etree.tostring(i, encoding="unicode")
        for i in etree.fromstring(xml).iterfind("devices/interface")]
    # The test driver cannot migrate: the same domain XML is started on B.
    b.conn.defineXML(xml).create()
    a.conn.lookupByName(f"guest-{inst[:8]}").destroy()
    a.agent.complete_outgoing_migration(inst)
    assert a.networks() == {} and a.agent.allocations() == []
    assert b.networks() == on_b
    # Release leaves B empty too.
    b.conn.lookupByName(f"guest-{inst[:8]}").destroy()
    b.agent.release(inst)
    assert b.networks() == {} and b.agent.allocations() == []
    b.agent.release(inst)  # idempotent


def test_destination_with_4_vfs_takes_4_of_6_migrating_instances(
        hosts, tmp_path):
    _, b = hosts
    # B's flavor pool net1 has 4 X710 VFs; the source has six instances.
    instances = [new_uuid() for _ in range(6)]
    big = SimHost(tmp_path / "hostA6", st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=6, netdev="ens1f0"),)))
    port = [PortRequest(0, flavor="net1")]
    for inst in instances:
        boot(big, inst, port)
    accepted, refused = [], []
    for inst in instances:
        try:
            b.agent.prepare_incoming_migration(inst, port)
            accepted.append(inst)
        except exception.MigrationRefused as exc:
            assert inst in str(exc)
            assert "Nothing was claimed or defined here" in str(exc)
            assert "flavor net1" in str(exc)
            refused.append(inst)
    assert len(accepted) == 4 and len(refused) == 2
    held = {x.instance_uuid for x in b.agent.allocations()}
    assert held == set(accepted)
    assert {n.rsplit("-", 1)[0] for n in b.networks()} == {
        PREFIX + i for i in accepted}
    # The refused ones still run on A, untouched.
    for inst in refused:
        assert len(big.agent.allocations(inst)) == 1
    big.close()


def test_abort_incoming_migration_leaves_the_destination_clean(hosts):
    a, b = hosts
    inst = new_uuid()
    boot(a, inst)
    before_a = a.networks()
    b.agent.prepare_incoming_migration(inst, PORTS)
    b.agent.abort_incoming_migration(inst)
    assert b.networks() == {} and b.agent.allocations() == []
    assert a.networks() == before_a
    assert len(a.agent.allocations(inst)) == 2


class FailingPortOneDriver(LibvirtMacvtapDriver):
    """Fails the network of port 1.  The scanner refuses a VF whose
    netdev name libvirt must never see, and the test driver accepts every
    other network: this failure cannot be produced for real, so it is
    injected."""

    def ensure_network(self, spec):  # type: ignore[no-untyped-def]
        if spec.name.endswith("-1"):
            raise exception.NetworkOperationFailed(
                network=spec.name, operation="define and start",
                reason="injected failure", code=-1)
        return super().ensure_network(spec)


def test_failure_part_way_through_ports_undoes_the_ports_done(tmp_path):
    layout = st.HostLayout((
        st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=1,
                    netdev="ens1f0"),
        st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=1,
                    netdev="ens2f0np0"),
    ))
    host = SimHost(tmp_path / "h", layout)
    host.agent.close()
    host.agent = HostAgent(host.conf, network_driver=FailingPortOneDriver(
        host.conf, connection=host.conn))
    host.agent.start()
    inst = new_uuid()
    with pytest.raises(exception.NetworkDriverError) as err:
        host.agent.prepare_incoming_migration(inst, PORTS)
    message = str(err.value)
    assert f"instance {inst} port 1" in message
    assert f"{PREFIX}{inst}-1" in message and "injected" in message
    assert host.networks() == {} and host.agent.allocations() == []
    # plug() after a successful claim: its networks are undone, the
    # claims kept for the caller to release.
    host.agent.claim(inst, PORTS)
    with pytest.raises(exception.NetworkDriverError):
        host.agent.plug(inst)
    assert host.networks() == {}
    assert len(host.agent.allocations(inst)) == 2
    host.agent.release(inst)
    assert host.agent.allocations() == []


def test_libvirt_errors_are_wrapped_naming_instance_port_network(tmp_path):
    host = SimHost(tmp_path / "h", HOST_A)
    host.conf.set_override("libvirt_uri", "test:///nonexistent/host.xml",
                           group="pci_passthrough")
    agent = HostAgent(host.conf)
    agent.refresh()
    inst = new_uuid()
    agent.claim(inst, PORTS[:1])
    with pytest.raises(exception.NetworkDriverError) as err:
        agent.plug(inst)
    message = str(err.value)
    assert f"{PREFIX}{inst}-0 for instance {inst} port 0" in message
    assert "test:///nonexistent/host.xml" in message


def test_reconcile_after_a_crash(hosts):
    a, _ = hosts
    inst = new_uuid()
    boot(a, inst)
    net0, net1 = f"{PREFIX}{inst}-0", f"{PREFIX}{inst}-1"
    # While the agent is down: one network lost, one pointing at another
    # device, a stray prefixed network, and an unrelated network.
    a.agent.close()
    a.conn.networkLookupByName(net0).destroy()
    a.conn.networkLookupByName(net0).undefine()
    wrong = a.conn.networkLookupByName(net1)
    wrong.destroy()
    wrong.undefine()
    a.conn.networkDefineXML(
        f"<network><name>{net1}</name><forward mode='passthrough'>"
        f"<interface dev='ens1f0v2'/></forward></network>").create()
    stray = f"{PREFIX}{new_uuid()}-0"
    a.conn.networkDefineXML(
        f"<network><name>{stray}</name><forward mode='passthrough'>"
        f"<interface dev='ens1f0v1'/></forward></network>").create()
    a.conn.networkDefineXML(
        "<network><name>operator-net</name><forward mode='bridge'>"
        "<interface dev='eth9'/></forward></network>").create()
    restarted = a.new_agent()
    report = restarted.start()
    assert report.actions == ()  # start() is idempotent
    a.agent = restarted
    allocs = {x.port_index: x for x in restarted.allocations(inst)}
    assert a.networks() == {net0: a.netdev_of(allocs[0].address),
                            net1: a.netdev_of(allocs[1].address)}
    assert a.conn.networkLookupByName("operator-net").isActive()


def test_reconcile_report_lists_each_action(hosts):
    a, _ = hosts
    inst = new_uuid()
    boot(a, inst)
    net0 = f"{PREFIX}{inst}-0"
    a.conn.networkLookupByName(net0).destroy()
    a.conn.networkLookupByName(net0).undefine()
    stray = f"{PREFIX}{new_uuid()}-3"
    a.conn.networkDefineXML(
        f"<network><name>{stray}</name><forward mode='passthrough'>"
        f"<interface dev='ens1f0v1'/></forward></network>")
    a.agent.close()
    a.agent = a.new_agent()
    assert {(x.action, x.network) for x in a.report.actions} == {
        ("restored", net0), ("deleted", stray)}


@pytest.mark.parametrize("option,value,error", [
    ("device_spec", ['{"vendor_id": "80860"}'], exception.InvalidDeviceSpec),
    ("flavor", ['{"name": "x", "colour": "red"}'], exception.InvalidFlavor),
])
def test_invalid_configuration_touches_nothing(tmp_path, option, value,
                                               error):
    host = SimHost(tmp_path / "h", HOST_A)
    host.agent.close()
    ledger = tmp_path / "other" / "claims.sqlite3"
    host.conf.set_override("state_path", str(ledger),
                           group="pci_passthrough")
    host.conf.set_override(option, value, group="pci_passthrough")
    with pytest.raises(error, match=f"\\[pci_passthrough\\] {option}"):
        HostAgent(host.conf)
    assert not ledger.exists()
