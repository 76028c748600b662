"""The plugin's claims where the scheduler placed the ports: nova wrote
each placed port's provider in its PCI request (``rp_uuids``) and hands
the instance's allocation to claim_instance and
prepare_incoming_migration; unallocated_resources is what nova still
adds.  On a simulated host (the standard layout: an X710 with three VFs
on physnet1, a ConnectX with two of group grp1 on physnet2) whose
providers nova's ProviderTree stand-in holds."""

import types
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pci_passthrough import exception
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.nova_provider_tree import NovaProviderTree
from pci_passthrough.nova import placed_ports
from pci_passthrough.nova.sriov_plugin import SriovPlugin

X710 = "0000:3b:00.0"


class Host:
    def __init__(self, workdir, nodename):
        self.sim = AgentHost(workdir)
        self.nodename = nodename
        self.plugin = SriovPlugin(self.sim.conf)
        self.plugin.init_host(nodename)
        self.tree = NovaProviderTree(nodename)
        self.plugin.update_provider_tree(self.tree, nodename)
        self.agent = self.plugin.agent

    def provider(self, pf=X710):
        """The UUID and class of the PF's provider."""
        data = self.tree.data(f"{self.nodename}_{pf.upper()}_pcipt")
        (rc,) = data.inventory
        return data.uuid, rc

    def vfs(self, pf=X710):
        return {a for a, d in self.sim.tree.devices.items()
                if d.parent_addr == pf}

    def close(self):
        self.plugin.cleanup_host(self.nodename)
        self.sim.close()


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path / "a", "cmp1")
    yield h
    h.close()


def instance():
    return types.SimpleNamespace(
        uuid=new_uuid(), flavor=types.SimpleNamespace(extra_specs={}),
        pci_requests=types.SimpleNamespace(requests=[]))


def pci_request(rp_uuids=None, physnet="physnet1"):
    spec = {"physical_network": physnet, "sriov_plugin": "pci_passthrough"}
    if rp_uuids is not None:
        spec["rp_uuids"] = rp_uuids
    return types.SimpleNamespace(requester_id=str(uuid.uuid4()),
                                 request_id=str(uuid.uuid4()), spec=[spec])


def test_a_placed_port_takes_a_vf_of_its_provider(host):
    rp, rc = host.provider()
    inst = instance()
    allocations = {rp: {"resources": {rc: 1}}, str(uuid.uuid4()): {
        "resources": {"VCPU": 1}}}

    (vf,) = host.plugin.claim_instance(inst, [pci_request(rp)], "cmp1",
                                       allocations)

    assert vf in host.vfs()
    # The scheduler allocated it already: nova adds nothing.
    assert host.plugin.unallocated_resources(inst, allocations) == {}


def test_ports_with_and_without_a_group_on_one_instance(host):
    rp, rc = host.provider()
    inst = instance()
    allocations = {rp: {"resources": {rc: 1}}}
    placed, free = pci_request(rp), pci_request()

    vfs = host.plugin.claim_instance(inst, [placed, free], "cmp1",
                                     allocations)

    assert len(set(vfs)) == 2 and set(vfs) <= host.vfs()
    # The unplaced port's unit is what nova adds.
    assert host.plugin.unallocated_resources(inst, allocations) == {
        rp: {"resources": {rc: 1}}}
    # Nothing placed, nothing allocated: every unit is added.
    assert host.plugin.unallocated_resources(inst, None) == {
        rp: {"resources": {rc: 2}}}


def test_no_placed_port_claims_as_before(host):
    inst = instance()
    (vf,) = host.plugin.claim_instance(inst, [pci_request()], "cmp1")
    rp, rc = host.provider()
    assert vf in host.vfs()
    assert host.plugin.unallocated_resources(inst, {}) == {
        rp: {"resources": {rc: 1}}}


def test_an_incoming_migration_takes_the_destinations_provider(tmp_path):
    src, dst = Host(tmp_path / "s", "src"), Host(tmp_path / "d", "dst")
    try:
        inst = instance()
        port = pci_request(src.provider()[0])
        vif = {"id": port.requester_id, "vnic_type": "macvtap",
               "address": "fa:16:3e:00:00:01", "profile": {},
               "details": {}, "network": {"meta": {
                   "physical_network": "physnet1"}}}
        rp, rc = src.provider()
        src.plugin.claim_instance(inst, [port], "src",
                                  {rp: {"resources": {rc: 1}}})
        slots = src.plugin.port_slots(inst)
        # The conductor wrote the destination's provider in the request.
        drp, drc = dst.provider()
        port.spec[0]["rp_uuids"] = drp
        inst.pci_requests.requests = [port]
        allocations = {drp: {"resources": {drc: 1}}}

        profiles = dst.plugin.prepare_incoming_migration(
            inst, [vif], slots, allocations)

        assert profiles[port.requester_id]["pci_slot"] in dst.vfs()
        assert dst.plugin.unallocated_resources(inst, allocations) == {}
        dst.plugin.abort_incoming_migration(inst)
        assert dst.agent.allocations() == []
    finally:
        src.close()
        dst.close()


def test_placed_on_reads_novas_rp_uuids():
    rp = str(uuid.uuid4())
    request = pci_request(f" {rp.upper()} ")
    assert placed_ports.placed_on(request) == (request.requester_id, (rp,))
    assert placed_ports.placed_on(pci_request()) is None
    assert placed_ports.placed_on(pci_request("")) is None


@pytest.mark.parametrize("value", ["eth0", 7, ["x"], "a," * 400, ","])
def test_placed_on_refuses_what_is_not_uuids(value):
    request = pci_request(value)
    with pytest.raises(exception.InvalidPortRequest,
                       match=f"{request.requester_id}.*rp_uuids"):
        placed_ports.placed_on(request)


def test_a_placed_port_without_an_allocation_is_a_mismatch():
    inst = instance()
    with pytest.raises(exception.AllocationMismatch,
                       match="placed by the scheduler, but nova gave no "
                             "allocation"):
        placed_ports.placement_arguments(
            inst, [pci_request(str(uuid.uuid4()))], None)
    assert placed_ports.placement_arguments(inst, [pci_request()], None) \
        == {}


def test_heal_allocations_makes_placement_the_ledgers(host):
    # An instance whose units nova never wrote (a crash after the
    # claim), one Placement does not have (deleted while the host was
    # down: left alone), and one already right.
    rp, rc = host.provider()
    short, gone, right = instance(), instance(), instance()
    for inst in (short, gone, right):
        host.plugin.claim_instance(inst, [pci_request()], "cmp1")
    root = str(uuid.uuid4())
    allocations = {
        short.uuid: {"allocations": {root: {"resources": {"VCPU": 1}}},
                     "consumer_generation": 1},
        right.uuid: {"allocations": {root: {"resources": {"VCPU": 1}},
                                     rp: {"resources": {rc: 1}}},
                     "consumer_generation": 1},
    }
    before_right = {k: dict(v) for k, v in
                    allocations[right.uuid]["allocations"].items()}

    assert host.plugin.heal_allocations(host.tree, "cmp1", allocations)

    assert allocations[short.uuid]["allocations"] == {
        root: {"resources": {"VCPU": 1}}, rp: {"resources": {rc: 1}}}
    assert allocations[right.uuid]["allocations"] == before_right
    assert gone.uuid not in allocations
    # Healed, nothing more to do.
    assert not host.plugin.heal_allocations(host.tree, "cmp1", allocations)


def test_heal_allocations_before_init_host_does_nothing(tmp_path):
    with AgentHost(tmp_path / "h") as sim:
        plugin = SriovPlugin(sim.conf)
        allocations = {"c": {"allocations": {}}}
        assert not plugin.heal_allocations(NovaProviderTree("h"), "h",
                                           allocations)
        assert allocations == {"c": {"allocations": {}}}


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(
    st.none(), st.integers(), st.binary(max_size=8), st.text(max_size=80),
    st.lists(st.uuids().map(str), min_size=1, max_size=3).map(",".join),
    st.lists(st.text(max_size=5), max_size=3)),
    spec=st.sampled_from(["list", "dict", "empty", "str"]))
def test_hostile_rp_uuids_are_uuids_none_or_refused(value, spec):
    request = pci_request()
    if spec == "list":
        request.spec[0]["rp_uuids"] = value
    elif spec == "dict":
        request.spec = {"rp_uuids": value}
    elif spec == "empty":
        request.spec = []
    else:
        request.spec = str(value)
    try:
        found = placed_ports.placed_on(request)
    except exception.InvalidPortRequest as exc:
        assert request.requester_id in str(exc)
        return
    if found is not None:
        port, uuids = found
        assert port == request.requester_id and uuids
        assert all(str(uuid.UUID(u)) == u for u in uuids)
