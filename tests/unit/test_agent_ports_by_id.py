"""Ports known by their Neutron port UUID: stable slots, one port
claimed, plugged and released at a time (attach and detach interface),
and the binding profile of the VF a port claimed, on simulated hosts
(a sysfs tree in tmp_path, libvirt's test driver, a ledger)."""

import uuid

import pytest
from lxml import etree

from pci_passthrough import PortRequest, exception
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.model.states import PortState

PREFIX = "pcipt-"


class Host(AgentHost):
    def networks(self) -> dict[str, str]:
        """Our networks: name -> the netdev they hold."""
        found = {}
        for net in self.conn.listAllNetworks(0):
            if net.name().startswith(PREFIX):
                found[net.name()] = etree.fromstring(net.XMLDesc()).find(
                    "forward/interface").get("dev")
        return found


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h", in_memory_netdevs=True) as h:
        yield h


def port(port_id, flavor="net1", mac=None, index=0):
    return PortRequest(index, flavor=flavor, mac=mac, port_id=port_id)


def ids(n):
    return [str(uuid.uuid4()) for _ in range(n)]


def test_claimed_ports_take_the_lowest_free_slots_in_order(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b = ids(2)
    # The indexes given are not read: the agent gives the slots.
    held = agent.claim(inst, [port(a, index=7), port(b, index=7)])
    assert [(x.port_id, x.port_index) for x in held] == [(a, 0), (b, 1)]
    assert agent.port_slots(inst) == {a: 0, b: 1}
    # Claimed again, in another order: each keeps its slot.
    again = agent.claim(inst, [port(b), port(a)])
    assert [(x.port_id, x.port_index) for x in again] == [(a, 0), (b, 1)]


def test_a_detach_renames_no_other_port_and_an_attach_takes_the_gap(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b, c, d = ids(4)
    agent.claim(inst, [port(a), port(b), port(c)])
    agent.plug(inst)
    before = host.networks()
    freed = agent.release_port(inst, b)
    assert (freed.port_id, freed.port_index) == (b, 1)
    after = host.networks()
    # Port b's network is gone; a's and c's keep their names and VFs.
    assert after == {k: v for k, v in before.items()
                     if k != f"{PREFIX}{inst}-1"}
    attached = agent.claim_port(inst, port(d))
    assert attached.port_index == 1
    assert attached.network == f"{PREFIX}{inst}-1"
    assert agent.port_slots(inst) == {a: 0, d: 1, c: 2}


def test_attach_claims_plugs_and_gives_the_profile_of_the_same_vf(host):
    agent = host.new_agent()
    inst = new_uuid()
    (a,) = ids(1)
    claimed = agent.claim_port(inst, port(a, mac="52:54:00:aa:bb:cc"))
    assert claimed.state == PortState.CLAIMED
    profile = agent.binding_profile(inst, a)
    assert profile["pci_slot"] == claimed.address
    plugged = agent.plug_port(inst, a)
    assert plugged.address == claimed.address
    assert host.networks() == {plugged.network: claimed.netdev}
    assert "52:54:00:aa:bb:cc" in plugged.interface_xml
    assert [x.state for x in agent.allocations(inst)] == [PortState.PLUGGED]


def test_the_binding_profile_is_read_from_sysfs(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b = ids(2)
    agent.claim(inst, [port(a), port(b, flavor="grp1")])
    for port_id in (a, b):
        alloc = next(x for x in agent.allocations(inst)
                     if x.port_id == port_id)
        vf = host.tree.devices[alloc.address]
        pf = host.tree.devices[vf.parent_addr]
        pf_mac = (pf.path / "net" / pf.netdev / "address").read_text()
        vendor = (vf.path / "vendor").read_text().strip()[2:]
        product = (vf.path / "device").read_text().strip()[2:]
        assert agent.binding_profile(inst, port_id) == {
            "pci_slot": alloc.address,
            "pci_vendor_info": f"{vendor}:{product}",
            "physical_network": "physnet1" if port_id == a else "physnet2",
            "pf_mac_address": pf_mac.strip(),
            "vf_num": vf.vf_index,
        }


def test_a_profile_of_a_port_not_held_names_it(host):
    agent = host.new_agent()
    inst = new_uuid()
    (a,) = ids(1)
    with pytest.raises(exception.InvalidPortRequest,
                       match=f"port {a}: instance {inst} holds no claim"):
        agent.binding_profile(inst, a)
    with pytest.raises(exception.InvalidPortRequest, match="UUID"):
        agent.binding_profile(inst, "not-a-port")


def test_per_port_calls_are_idempotent(host):
    agent = host.new_agent()
    inst = new_uuid()
    (a,) = ids(1)
    first = agent.claim_port(inst, port(a))
    assert agent.claim_port(inst, port(a)) == first
    one = agent.plug_port(inst, a)
    assert agent.plug_port(inst, a) == one
    assert agent.release_port(inst, a).address == first.address
    assert agent.release_port(inst, a) is None
    assert agent.allocations() == [] and host.networks() == {}


def test_upper_case_port_ids_are_the_same_port(host):
    agent = host.new_agent()
    inst = new_uuid()
    (a,) = ids(1)
    agent.claim_port(inst, port(a.upper()))
    assert agent.port_slots(inst) == {a: 0}
    assert agent.binding_profile(inst, a.upper())["pci_slot"]


def test_a_repeated_port_claim_that_differs_is_a_conflict(host):
    agent = host.new_agent()
    inst = new_uuid()
    (a,) = ids(1)
    agent.claim_port(inst, port(a))
    with pytest.raises(exception.ClaimConflict,
                       match=f"port {a} already holds .* flavor 'net1'"):
        agent.claim_port(inst, port(a, flavor="grp1"))
    # An index-only request cannot take a slot a port holds.
    with pytest.raises(exception.ClaimConflict, match="port_id"):
        agent.claim(inst, [PortRequest(0, flavor="net1")])


def test_claim_port_needs_a_port_id(host):
    agent = host.new_agent()
    with pytest.raises(exception.InvalidPortRequest, match="port_id"):
        agent.claim_port(new_uuid(), PortRequest(0, flavor="net1"))


def test_releasing_a_port_restores_its_vf_and_keeps_the_others(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b = ids(2)
    agent.claim(inst, [port(a, mac="52:54:00:00:00:0a"),
                       port(b, mac="52:54:00:00:00:0b")])
    plugged = {p.index: p for p in agent.plug(inst)}
    # The guest changed the VF's MAC.
    netdev = plugged[0].netdev
    before = host.netdevs.states[netdev]
    host.netdevs.states[netdev] = before.__class__(
        netdev=netdev, mac="52:54:00:00:00:0a", mtu=9000, up=False)
    agent.release_port(inst, a)
    assert host.netdevs.states[netdev] == before
    assert agent.vf_journals().keys() == {plugged[1].address}
    assert [x.port_id for x in agent.allocations(inst)] == [b]


def test_port_ids_and_slots_survive_a_restart(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b, c = ids(3)
    agent.claim(inst, [port(a), port(b), port(c)])
    agent.plug(inst)
    agent.release_port(inst, a)
    agent.close()
    again = host.new_agent()
    assert again.port_slots(inst) == {b: 1, c: 2}
    assert host.report.actions == ()


def test_plug_port_with_another_port_only_claimed_plugs_both(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b = ids(2)
    agent.claim(inst, [port(a), port(b)])
    plugged = agent.plug_port(inst, b)
    assert plugged.index == 1
    assert {x.state for x in agent.allocations(inst)} == {PortState.PLUGGED}
    assert len(host.networks()) == 2


def test_one_port_is_not_changed_alone_during_a_migration(host):
    agent = host.new_agent()
    inst = new_uuid()
    a, b = ids(2)
    agent.claim(inst, [port(a)])
    agent.plug(inst)
    agent.begin_outgoing_migration(inst)
    for call in (lambda: agent.claim_port(inst, port(b)),
                 lambda: agent.plug_port(inst, a),
                 lambda: agent.release_port(inst, a)):
        with pytest.raises(exception.InvalidPortRequest,
                           match="being live-migrated"):
            call()
    assert [x.state for x in agent.allocations(inst)] == [
        PortState.OUTGOING]


def test_a_migration_keeps_the_slots_and_the_domain_xml(tmp_path):
    with Host(tmp_path / "src") as src, Host(tmp_path / "dst") as dst:
        source, dest = src.new_agent(), dst.new_agent()
        inst = new_uuid()
        a, b, c = ids(3)
        source.claim(inst, [port(a), port(b), port(c)])
        source.release_port(inst, a)
        plugged = source.plug(inst)
        domain = guest_xml(inst, [p.interface_xml for p in plugged])
        slots = source.port_slots(inst)
        assert slots == {b: 1, c: 2}
        # The destination claims in the source's slots.
        incoming = dest.prepare_incoming_migration(
            inst, [port(p, index=s) for p, s in slots.items()])
        assert guest_xml(inst, [p.interface_xml for p in incoming]) == \
            domain
        assert set(dst.networks()) == set(src.networks())
        dest.complete_incoming_migration(inst)
        assert dest.port_slots(inst) == slots


def test_an_incoming_port_held_in_another_slot_is_refused(tmp_path):
    with Host(tmp_path / "dst") as dst:
        agent = dst.new_agent()
        inst = new_uuid()
        (a,) = ids(1)
        agent.prepare_incoming_migration(inst, [port(a, index=3)])
        with pytest.raises(exception.ClaimConflict,
                           match="slot 3; the request asks for 0"):
            agent.prepare_incoming_migration(inst, [port(a, index=0)])
