"""HostAgent and Placement: the request for a flavor, and claims that take
exactly what the scheduler allocated, on simulated hosts (a generated
sysfs tree, libvirt's test driver, a ledger).  The provider UUIDs are
given as the standalone reporter learns them; tests/nova_compat has them
learnt through nova's own ProviderTree, tests/functional/placement_service from
a real Placement."""

import uuid

import pytest

from pci_passthrough import PortRequest, exception
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.fixtures import standard_host as std
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.standard_host import FLAVORS
from pci_passthrough.ledger import Ledger
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement import requests

# The standard host with a second X710, and its Mellanox VFs on physnet1
# too: net1 may be served by three PFs.
SPECS = (std.INTEL_SPEC,
         '{"vendor_id": "15b3", "physical_network": "physnet1", '
         '"group": "grp1"}')
LAYOUT = st.HostLayout((
    std.X710,
    st.PfLayout("intel-x710", "0000:af:00.0", numvfs=2, netdev="ens5f0"),
    std.CX6DX,
))
NODE = "cmp1"
PREFIX = "pcipt-"


class Host(AgentHost):
    def __init__(self, workdir, layout=LAYOUT):
        super().__init__(workdir, layout, device_specs=SPECS,
                         flavors=FLAVORS)
        self.agent = self.new_agent()
        tree = self.agent.provider_tree(NODE)
        # As Placement would: a UUID per provider.
        self.uuids = {p.name: str(uuid.uuid4()) for p in tree.providers}
        self.rp = {p.pf_address: self.uuids[p.name] for p in tree.providers}
        self.vfs = {p.pf_address: set(p.vfs) for p in tree.providers}

    def learn(self) -> None:
        self.agent.use_placement_providers(NODE, self.uuids)

    def networks(self) -> set[str]:
        return {n.name() for n in self.conn.listAllNetworks(0)
                if n.name().startswith(PREFIX)}


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "a") as h:
        yield h



def ports(*flavors: str) -> list[PortRequest]:
    return [PortRequest(i, flavor=f) for i, f in enumerate(flavors)]


def test_request_groups_are_the_flavors_placement_request(host) -> None:
    tree = host.agent.provider_tree(NODE)
    flavors = parse_flavors(FLAVORS, known_tags={"physical_network",
                                                 "group"},
                            special_attributes=["group"])
    for flavor, count in (("net1", 1), ("net1", 3), ("grp1", 2)):
        queries = host.agent.request_groups(flavor, count)
        assert queries == requests.request_queries(
            flavors, flavor, count, tree.catalog())
        (query,) = queries
        for n in range(count):
            assert f"resources_pci{n}=" in query
        assert "group_policy=none" in query
    marker = names.marker_trait("group")
    # The group's VFs are forbidden to net1 and required by grp1.
    assert f"!{marker}" in host.agent.request_groups("net1")[0]
    assert f"!{marker}" not in host.agent.request_groups("grp1")[0]
    with pytest.raises(exception.UnknownFlavor):
        host.agent.request_groups("nope")


def test_claim_takes_vfs_of_the_allocated_pfs_only(host) -> None:
    host.learn()
    inst = new_uuid()
    allocation = {0: host.rp["0000:af:00.0"], 1: host.rp["0000:af:00.0"],
                  2: host.rp["0000:5e:00.0"]}
    allocs = host.agent.claim(inst, ports("net1", "net1", "grp1"),
                              allocation=allocation)
    assert {a.address for a in allocs[:2]} == host.vfs["0000:af:00.0"]
    assert allocs[2].address in host.vfs["0000:5e:00.0"]
    # Without the allocation the claim would have started at 3b.
    other = host.agent.claim(new_uuid(), ports("net1"))
    assert other[0].address in host.vfs["0000:3b:00.0"]
    # The ledger rows carry the flavor names.
    with Ledger(host.conf.pci_passthrough.state_path,
                readonly=True) as ledger:
        assert sorted(r.flavor for r in ledger.records()
                      if r.instance_uuid == inst) == \
            ["grp1", "net1", "net1"]
    # Repeated with the same allocation: the same answer, nothing new.
    assert host.agent.claim(inst, ports("net1", "net1", "grp1"),
                            allocation=allocation) == allocs
    # The held ports are not on the provider this allocation names.
    with pytest.raises(exception.AllocationMismatch, match=inst):
        host.agent.claim(inst, ports("net1", "net1", "grp1"), allocation={
            0: host.rp["0000:3b:00.0"], 1: host.rp["0000:af:00.0"],
            2: host.rp["0000:5e:00.0"]})


def allocation_cases(host):
    a, b, grp = (host.rp[x] for x in ("0000:3b:00.0", "0000:af:00.0",
                                       "0000:5e:00.0"))
    return [
        ({0: str(uuid.uuid4())}, ports("net1"), "not one of this host"),
        # grp1's VFs are on 5e only: 3b has none that serves it.
        ({0: a}, ports("grp1"), "none of the devices it was allocated"),
        # The grouped VFs are never given to a flavor not naming it.
        ({0: grp}, ports("net1"), "special attribute group"),
        ({0: b, 1: b, 2: b}, ports("net1", "net1", "net1"),
         "3 ports were allocated on"),
        ({0: a}, ports("net1", "net1"), "missing: 1"),
        ({0: a, 5: a}, ports("net1"), "not requested: 5"),
        ({"0": a}, ports("net1"), "expected a mapping of port index"),
        ([a], ports("net1"), "expected a mapping of port index"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_an_allocation_that_does_not_fit_records_nothing(host,
                                                         case) -> None:
    host.learn()
    allocation, wanted, reason = allocation_cases(host)[case]
    inst = new_uuid()
    with pytest.raises(exception.AllocationMismatch) as err:
        host.agent.claim(inst, wanted, allocation=allocation)
    assert inst in str(err.value) and reason in str(err.value)
    assert "Nothing was claimed" in str(err.value)
    assert host.agent.allocations() == []


def test_allocated_pf_whose_vfs_are_taken_here_is_refused(host) -> None:
    host.learn()
    held = host.agent.claim(new_uuid(), ports("net1"), allocation={
        0: host.rp["0000:af:00.0"]})
    inst = new_uuid()
    with pytest.raises(exception.AllocationMismatch) as err:
        host.agent.claim(inst, ports("net1", "net1"), allocation={
            0: host.rp["0000:af:00.0"], 1: host.rp["0000:af:00.0"]})
    assert f"in use by instance {held[0].instance_uuid}" in str(err.value)
    assert host.agent.allocations(inst) == []


def test_claim_from_an_allocation_needs_the_providers_known(host) -> None:
    inst = new_uuid()
    with pytest.raises(exception.AllocationMismatch,
                       match="does not know its Placement providers"):
        host.agent.claim(inst, ports("net1"),
                         allocation={0: host.rp["0000:3b:00.0"]})
    assert host.agent.allocations() == []


def test_incoming_migration_takes_the_allocated_pf(tmp_path) -> None:
    src, dst = Host(tmp_path / "src"), Host(tmp_path / "dst")
    try:
        src.learn()
        dst.learn()
        inst = new_uuid()
        src.agent.claim(inst, ports("net1"),
                        allocation={0: src.rp["0000:3b:00.0"]})
        src.agent.plug(inst)
        bad = new_uuid()
        with pytest.raises(exception.AllocationMismatch, match=bad):
            dst.agent.prepare_incoming_migration(
                bad, ports("net1"), allocation={0: src.rp["0000:3b:00.0"]})
        assert dst.agent.allocations() == [] and dst.networks() == set()
        plugged = dst.agent.prepare_incoming_migration(
            inst, ports("net1"), allocation={0: dst.rp["0000:af:00.0"]})
        assert plugged[0].address in dst.vfs["0000:af:00.0"]
        assert dst.networks() == {f"{PREFIX}{inst}-0"}
    finally:
        src.close()
        dst.close()
