"""claim() and claim_port() reading nova's allocation (provider UUID ->
{"resources": ...}) with the request groups' provider mapping (port
UUID -> provider UUIDs), on the simulated host of
test_agent_placement (two X710s and a ConnectX, net1 served by
three PFs)."""

import uuid

import pytest
from test_agent_placement import Host

from pci_passthrough import PortRequest, exception
from pci_passthrough.fixtures.agent_host import new_uuid

X710A, X710B, CX6 = "0000:3b:00.0", "0000:af:00.0", "0000:5e:00.0"
NEUTRON_RP = str(uuid.uuid4())  # a bandwidth provider that is not ours


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "a") as h:
        h.learn()
        yield h


def port(port_id, flavor="net1"):
    return PortRequest(0, flavor=flavor, port_id=port_id)


def resources(host, pf, units=1):
    name = next(p for p in host.agent.provider_tree("cmp1").providers
                if p.pf_address == pf)
    return {"resources": {name.resource_class: units}}


def test_each_port_takes_a_vf_of_its_groups_provider(host):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    allocation = {host.rp[X710B]: resources(host, X710B),
                  host.rp[CX6]: resources(host, CX6),
                  NEUTRON_RP: {"resources": {"NET_BW_EGR_KILOBIT_PER_SEC":
                                             1000}}}
    mapping = {a: [host.rp[X710B], NEUTRON_RP], b: [host.rp[CX6]]}
    held = host.agent.claim(new_uuid(), [port(a), port(b, "grp1")],
                            allocation=allocation, provider_mapping=mapping)
    assert held[0].address in host.vfs[X710B]
    assert held[1].address in host.vfs[CX6]


def test_claim_port_reads_the_same_form(host):
    inst = new_uuid()
    (a,) = str(uuid.uuid4()),
    alloc = host.agent.claim_port(
        inst, port(a), allocation={host.rp[X710B]: resources(host, X710B)},
        provider_mapping={a.upper(): [host.rp[X710B]]})
    assert alloc.address in host.vfs[X710B]


def test_the_old_form_keeps_working(host):
    held = host.agent.claim(new_uuid(), [PortRequest(0, flavor="net1")],
                            allocation={0: host.rp[X710B]})
    assert held[0].address in host.vfs[X710B]


def cases(host, a, b):
    rp = host.rp
    return [
        ({rp[X710A]: resources(host, X710A)}, {b: [rp[X710A]]},
         f"port {a} has no request group"),
        ({rp[X710A]: resources(host, X710A)}, {a: [NEUTRON_RP]},
         "names 0 PF providers of this host"),
        ({rp[X710A]: resources(host, X710A, 2)},
         {a: [rp[X710A], rp[X710B]]}, "names 2 PF providers"),
        ({rp[X710B]: resources(host, X710B)}, {a: [rp[X710A]]},
         f"1 port\\(s\\) are mapped to provider {rp[X710A]}, on which "
         f"nova's allocation holds 0"),
        ({rp[X710A]: {"resources": {"CUSTOM_OTHER": 1}}}, {a: [rp[X710A]]},
         "holds 0 unit"),
        ({rp[X710A]: {"generation": 3}}, {a: [rp[X710A]]},
         "has no 'resources' mapping"),
        ({rp[X710A]: {"resources": {
            next(iter(resources(host, X710A)["resources"])): "1"}}},
         {a: [rp[X710A]]}, "expected a count"),
        ([rp[X710A]], {a: [rp[X710A]]}, "expected nova's allocation"),
        ({rp[X710A]: resources(host, X710A)}, {a: rp[X710A]},
         "expected the request groups' provider mapping"),
        ({rp[X710A]: resources(host, X710A)}, None,
         "needs the request groups' provider_mapping"),
    ]


def test_an_allocation_that_does_not_fit_records_nothing(host):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for allocation, mapping, reason in cases(host, a, b):
        inst = new_uuid()
        with pytest.raises(exception.AllocationMismatch, match=reason):
            host.agent.claim(inst, [port(a)], allocation=allocation,
                             provider_mapping=mapping)
        assert host.agent.allocations(inst) == []


def test_a_port_without_port_id_cannot_be_mapped(host):
    with pytest.raises(exception.AllocationMismatch,
                       match="port 0 has no port_id"):
        host.agent.claim(new_uuid(), [PortRequest(0, flavor="net1")],
                         allocation={host.rp[X710A]:
                                     resources(host, X710A)},
                         provider_mapping={})


def test_a_held_port_must_be_on_its_mapped_provider(host):
    inst = new_uuid()
    (a,) = str(uuid.uuid4()),
    host.agent.claim_port(
        inst, port(a), allocation={host.rp[X710A]: resources(host, X710A)},
        provider_mapping={a: [host.rp[X710A]]})
    with pytest.raises(exception.AllocationMismatch,
                       match=f"port {a} holds .* not a VF of the provider "
                             f"it was allocated on"):
        host.agent.claim_port(
            inst, port(a),
            allocation={host.rp[X710B]: resources(host, X710B)},
            provider_mapping={a: [host.rp[X710B]]})


def test_placement_resources_are_the_claims_in_novas_form(host):
    inst = new_uuid()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    mapping = {a: [host.rp[X710B]], b: [host.rp[X710B]]}
    allocation = {host.rp[X710B]: resources(host, X710B, 2)}
    held = host.agent.claim(inst, [port(a), port(b)],
                            allocation=allocation, provider_mapping=mapping)
    assert {h.address for h in held} <= set(host.vfs[X710B])
    # What nova adds to the instance's allocation: what it allocated.
    assert host.agent.placement_resources(inst) == {
        host.rp[X710B]: resources(host, X710B, 2)["resources"]}
    assert host.agent.placement_resources(inst, b.upper()) == {
        host.rp[X710B]: resources(host, X710B, 1)["resources"]}
    assert host.agent.placement_resources(new_uuid()) == {}
    with pytest.raises(exception.InvalidPortRequest, match="holds no claim"):
        host.agent.placement_resources(inst, str(uuid.uuid4()))


def test_placement_resources_need_the_providers_uuids(tmp_path):
    with Host(tmp_path / "b") as fresh:
        inst = new_uuid()
        fresh.agent.claim(inst, [port(str(uuid.uuid4()))])
        with pytest.raises(exception.AllocationMismatch,
                           match="does not know its Placement providers"):
            fresh.agent.placement_resources(inst)


def test_an_unplaced_port_takes_any_vf_that_serves_it(host):
    # Its flavor had no request group: Placement did not place it; the
    # placed one still takes its group's provider.
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    held = host.agent.claim(
        new_uuid(), [port(a, "grp1"), port(b)],
        allocation={host.rp[CX6]: resources(host, CX6)},
        provider_mapping={a: [host.rp[CX6]]}, unplaced=[b.upper()])
    assert held[0].address in host.vfs[CX6]
    assert held[1].address in host.vfs[X710A] | host.vfs[X710B]


def test_unplaced_ports_need_novas_form(host):
    inst = new_uuid()
    with pytest.raises(exception.AllocationMismatch,
                       match="need nova's form of allocation"):
        host.agent.claim(inst, [port(str(uuid.uuid4()))],
                         allocation={0: host.rp[X710A]},
                         unplaced=[str(uuid.uuid4())])
    assert host.agent.allocations(inst) == []
