"""The loop through a real Placement: a host syncs, the scheduler asks
for candidates with the host's own request, writes the allocation, and
HostAgent.claim(allocation=) takes VFs of exactly the allocated PFs; an
allocation of another host's providers is refused, nothing recorded."""

import uuid

import pytest
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter

pytestmark = [pytest.mark.functional, pytest.mark.placement]




def allocate(client, instance, choice):
    client.put(f"/allocations/{instance}", {
        "allocations": {rp: {"resources": a["resources"]}
                        for rp, a in choice["allocations"].items()},
        "project_id": "p", "user_id": "u", "consumer_generation": None,
        "consumer_type": "INSTANCE"}, expect=(204,))


def test_host_claims_what_placement_allocated(tmp_path, client,
                                              nodename) -> None:
    name_a, name_b = nodename(), nodename()
    conf = agent_host(tmp_path / "a", name_a)
    other = agent_host(tmp_path / "b", name_b)
    report = host_view(conf).sync(Reporter(client))
    other_report = host_view(other).sync(Reporter(client))
    uuids = report.provider_uuids
    provider_of = {rp: name for name, rp in uuids.items()}
    with HostAgent(conf) as agent:
        agent.start()
        agent.use_placement_providers(name_a, uuids)
        tree = agent.provider_tree(name_a)
        vfs = {p.name: set(p.vfs) for p in tree.providers}
        flavors = ["net1", "net1", "grp1"]
        ports = [PortRequest(i, flavor=f, needs_netdev=False)
                 for i, f in enumerate(flavors)]
        # The scheduler's request: grp1 and net1 groups, in one query
        # per combination; here each flavor has one group kind.
        net1 = agent.request_groups("net1", 2)
        grp1 = agent.request_groups("grp1", 1)
        assert len(net1) == len(grp1) == 1
        choices = []
        for query in (net1[0], grp1[0]):
            body = client.get(f"/allocation_candidates?{query}").body
            choices.append([c for c in body["allocation_requests"]
                            if set(c["allocations"]) <= set(provider_of)])
        assert choices[0] and choices[1]
        net_choice, grp_choice = choices[0][0], choices[1][0]
        allocation = {0: net_choice["mappings"]["_pci0"][0],
                      1: net_choice["mappings"]["_pci1"][0],
                      2: grp_choice["mappings"]["_pci0"][0]}
        instance = str(uuid.uuid4())
        merged = {"allocations": {}}
        for choice in (net_choice, grp_choice):
            for rp, a in choice["allocations"].items():
                have = merged["allocations"].setdefault(
                    rp, {"resources": {}})["resources"]
                for rc, n in a["resources"].items():
                    have[rc] = have.get(rc, 0) + n
        allocate(client, instance, merged)

        # Another host's providers: refused, nothing recorded.
        stranger = str(uuid.uuid4())
        foreign = next(iter(other_report.provider_uuids.values()))
        with pytest.raises(exception.AllocationMismatch, match=stranger):
            agent.claim(stranger, ports[:1], allocation={0: foreign})
        assert agent.allocations(stranger) == []

        claimed = agent.claim(instance, ports, allocation=allocation)
        for alloc in claimed:
            provider = provider_of[allocation[alloc.port_index]]
            assert alloc.address in vfs[provider], (alloc, provider)
            assert alloc.flavor == flavors[alloc.port_index]
    # Placement's usages and the ledger agree: a sync heals nothing.
    again = host_view(conf).sync(Reporter(client))
    assert again.healed_consumers == [] and not again.changed
