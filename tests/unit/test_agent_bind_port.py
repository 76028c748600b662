"""Neutron's binding of a port claimed before it (bind_port): nova claims
a port's VF at its resource claim, when neither the port's MAC nor its
VLAN is known; the plug uses what bind_port records.  On simulated hosts
(a sysfs tree in tmp_path, libvirt's test driver, a ledger)."""

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from pci_passthrough import PortRequest, exception
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid

MAC = "fa:16:3e:00:00:0a"


@pytest.fixture
def host(tmp_path):
    with AgentHost(tmp_path / "h", in_memory_netdevs=True) as h:
        yield h


def unbound(port_id):
    return PortRequest(0, spec={"physical_network": "physnet1"},
                       port_id=port_id)


def network_xml(host, name):
    return etree.fromstring(host.conn.networkLookupByName(name).XMLDesc())


def test_a_claim_made_before_binding_plugs_with_the_binding(host):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    (claim,) = agent.claim(inst, [unbound(port)])
    assert (claim.mac, claim.vlan) == (None, None)

    bound = agent.bind_port(inst, port, mac=MAC, vlan=100)

    assert (bound.address, bound.mac, bound.vlan) == (claim.address, MAC,
                                                      100)
    (plugged,) = agent.plug(inst)
    assert plugged.mac == MAC
    assert etree.fromstring(plugged.interface_xml).find(
        "mac").get("address") == MAC
    tag = network_xml(host, plugged.network).find("vlan/tag")
    assert tag is not None and tag.get("id") == "100"
    # Kept in the ledger: a restarted agent plugs the same.
    agent.close()
    again = host.new_agent()
    (held,) = again.allocations(inst)
    assert (held.mac, held.vlan, held.state) == (MAC, 100, "plugged")


def test_binding_again_as_bound_changes_nothing(host):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    agent.claim(inst, [unbound(port)])
    agent.bind_port(inst, port, mac=MAC, vlan=None)
    agent.plug(inst)
    # A hard reboot plugs the same ports again.
    same = agent.bind_port(inst, port.upper(), mac=MAC.upper(), vlan=None)
    assert (same.mac, same.vlan, same.state) == (MAC, None, "plugged")


def test_a_networked_port_refuses_another_binding(host):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    agent.claim(inst, [unbound(port)])
    agent.bind_port(inst, port, mac=MAC, vlan=100)
    (plugged,) = agent.plug(inst)
    with pytest.raises(exception.ClaimConflict,
                       match=f"port {port} already holds .* vlan 100; the "
                             f"request asks for 200"):
        agent.bind_port(inst, port, mac=MAC, vlan=200)
    (held,) = agent.allocations(inst)
    assert held.vlan == 100
    assert network_xml(host, plugged.network).find(
        "vlan/tag").get("id") == "100"


def test_a_binding_before_plug_may_change(host):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    agent.claim(inst, [unbound(port)])
    agent.bind_port(inst, port, mac=MAC, vlan=100)
    # Rebound (another host's binding failed, say) before the guest ran.
    again = agent.bind_port(inst, port, mac=MAC, vlan=101)
    assert again.vlan == 101


@pytest.mark.parametrize("mac,vlan,reason", [
    ("not-a-mac", None, "MAC"),
    (MAC, 4095, "VLAN 4095 is not from 1 to 4094"),
    (MAC, True, "VLAN"),
])
def test_a_malformed_binding_is_refused_and_nothing_changes(host, mac,
                                                            vlan, reason):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    agent.claim(inst, [unbound(port)])
    with pytest.raises(exception.InvalidPortRequest, match=reason):
        agent.bind_port(inst, port, mac=mac, vlan=vlan)
    (held,) = agent.allocations(inst)
    assert (held.mac, held.vlan) == (None, None)


def test_binding_a_port_not_held_names_it(host):
    agent = host.new_agent()
    inst, port = new_uuid(), str(uuid.uuid4())
    with pytest.raises(exception.InvalidPortRequest,
                       match=f"port {port}: instance {inst} holds no claim"):
        agent.bind_port(inst, port, mac=MAC, vlan=None)


# -- hostile input -----------------------------------------------------------

JUNK = (st.none() | st.booleans() | st.integers(-2**40, 2**40)
        | st.floats(allow_nan=True) | st.text(max_size=20)
        | st.binary(max_size=8) | st.lists(st.integers(), max_size=2))
MACS = st.sampled_from([MAC, MAC.upper(), "fa:16:3e:00:00:0b"]) | JUNK
VLANS = st.sampled_from([None, 1, 100, 4094, "100", 0]) | JUNK


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(st.lists(st.tuples(MACS, VLANS), min_size=1, max_size=4))
def test_any_binding_is_recorded_whole_or_refused_with_nothing_changed(
        host, bindings):
    agent = host.new_agent()
    try:
        inst, port = new_uuid(), str(uuid.uuid4())
        agent.claim(inst, [unbound(port)])
        for mac, vlan in bindings:
            (before,) = agent.allocations(inst)
            try:
                bound = agent.bind_port(inst, port, mac=mac, vlan=vlan)
            except exception.InvalidPortRequest as exc:
                assert str(exc).startswith(
                    f"Invalid request for port {port}: ")
                assert agent.allocations(inst) == [before]
                continue
            assert bound.mac == (mac.lower() if isinstance(mac, str)
                                 else mac)
            assert bound.vlan is None or 1 <= bound.vlan <= 4094
            assert agent.allocations(inst) == [bound]
        agent.release(inst)
        assert agent.allocations() == []
    finally:
        agent.close()
