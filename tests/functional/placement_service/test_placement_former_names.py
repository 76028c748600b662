"""A host reported by an earlier release, against a real Placement: its
providers under their former names (Nova's own pattern,
``<nodename>_<PF ADDRESS>``) with Nova's COMPUTE_MANAGED_PCI_DEVICE,
holding allocations.  doctor names them, and placement sync (doctor
--fix) renames them in place: the same UUIDs, every allocation and
consumer generation untouched, no trait of Nova's left."""

import uuid

import pytest
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter, SyncReport
from pci_passthrough.placement.tree import ProviderTree

pytestmark = [pytest.mark.functional, pytest.mark.placement]


def ports(*flavors):
    return [PortRequest(i, flavor=f, needs_netdev=False)
            for i, f in enumerate(flavors)]


def former_host(client, tree: ProviderTree) -> tuple[str, dict[str, str]]:
    """nova-compute's root (with VCPU) and the tree's providers as an
    earlier release reported them; their UUIDs by current name."""
    root = client.post("/resource_providers",
                       {"name": tree.nodename}).body["uuid"]
    client.put(f"/resource_providers/{root}/inventories", {
        "resource_provider_generation": 0,
        "inventories": {"VCPU": {"total": 8}}})
    reporter = Reporter(client)
    reporter.ensure_classes(tree.resource_classes, SyncReport())
    reporter.ensure_traits(tree.traits, SyncReport())
    uuids = {}
    for p in tree.providers:
        rp = client.post("/resource_providers", {
            "name": p.former_name, "parent_provider_uuid": root}).body
        client.put(f"/resource_providers/{rp['uuid']}/inventories", {
            "resource_provider_generation": rp["generation"],
            "inventories": p.inventory()})
        client.put(f"/resource_providers/{rp['uuid']}/traits", {
            "resource_provider_generation": rp["generation"] + 1,
            "traits": sorted(p.traits | {names.NOVA_PCI_TRAIT})})
        uuids[p.name] = rp["uuid"]
    return root, uuids


def allocate(client, consumer, allocations) -> None:
    client.put(f"/allocations/{consumer}", {
        "allocations": {rp: {"resources": res}
                        for rp, res in allocations.items()},
        "project_id": "p", "user_id": "u", "consumer_generation": None,
        "consumer_type": "INSTANCE"}, expect=(204,))


def held(client, consumers) -> dict[str, dict]:
    """Each consumer's allocations and generation."""
    out = {}
    for consumer in consumers:
        body = client.get(f"/allocations/{consumer}").body
        out[consumer] = ({rp: a["resources"] for rp, a in
                          body["allocations"].items()},
                         body["consumer_generation"])
    return out


def in_tree(client, root) -> dict[str, dict]:
    found = client.get(f"/resource_providers?in_tree={root}").body
    return {p["name"]: p for p in found["resource_providers"]
            if p["uuid"] != root}


def traits(client, uuid_) -> set[str]:
    return set(client.get(f"/resource_providers/{uuid_}/traits")
               .body["traits"])


def placement_findings(report):
    return sorted((f.kind.value, f.subject, f.fixable, f.fixed)
                  for f in report.findings
                  if f.kind.value.startswith("placement"))


def test_doctor_fix_renames_former_providers_keeping_allocations(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    tree = host_view(conf).tree
    x710, cx6 = tree.providers
    root, uuids = former_host(client, tree)
    instance, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(instance, ports("net1", "net1"))
        allocate(client, instance, {
            root: {"VCPU": 2}, uuids[x710.name]: {x710.resource_class: 2}})
        # A consumer no claim here explains: never touched either.
        allocate(client, stranger, {uuids[cx6.name]: {cx6.resource_class: 1}})
        before = held(client, [instance, stranger])

        found = placement_findings(agent.doctor(placement=client))
        assert found == [
            ("placement-consumer", f"consumer {stranger}", False, False),
            ("placement-provider", f"provider {x710.former_name}", True,
             False),
            ("placement-provider", f"provider {cx6.former_name}", True,
             False)]
        fixed = placement_findings(agent.doctor(fix=True, placement=client))
        assert [f for f in fixed if f[2]] == [
            ("placement-provider", f"provider {x710.former_name}", True,
             True),
            ("placement-provider", f"provider {cx6.former_name}", True,
             True)]

        # The same providers under the new names, without Nova's trait.
        now = in_tree(client, root)
        assert {name: rp["uuid"] for name, rp in now.items()} == uuids
        for p in tree.providers:
            assert traits(client, uuids[p.name]) == set(p.traits)
        # No allocation moved, no consumer generation changed.
        assert held(client, [instance, stranger]) == before
        # Nothing left to do: another sync writes nothing.
        assert host_view(conf).sync(Reporter(client),
                                     create_root=False).writes == 0


def test_a_former_provider_beside_its_new_name_keeps_what_it_holds(
        tmp_path, client, nodename) -> None:
    """The new provider exists already (made by a reshape that failed
    part-way): the former one is retired, its units the ledger holds
    healed onto the new one, the others kept, and Nova's trait gone."""
    conf = agent_host(tmp_path, nodename())
    tree = host_view(conf).tree
    x710 = tree.providers[0]
    root, uuids = former_host(client, tree)
    instance, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(instance, ports("net1"))
        former = uuids[x710.name]
        allocate(client, instance, {
            root: {"VCPU": 1}, former: {x710.resource_class: 1}})
        allocate(client, stranger, {former: {x710.resource_class: 1}})
        client.post("/resource_providers", {
            "name": x710.name, "parent_provider_uuid": root})

        report = host_view(conf).sync(Reporter(client), create_root=False)
        assert x710.former_name not in report.renamed_providers
        assert report.kept_in_use == [x710.former_name]
        new = report.provider_uuids[x710.name]
        assert new != former
        assert held(client, [instance, stranger]) == {
            instance: ({root: {"VCPU": 1}, new: {x710.resource_class: 1}},
                       2),
            stranger: ({former: {x710.resource_class: 1}}, 1)}
        assert names.NOVA_PCI_TRAIT not in traits(client, former)
        inventory = client.get(f"/resource_providers/{former}/"
                               f"inventories").body["inventories"]
        assert {rc: (inv["reserved"], inv["total"])
                for rc, inv in inventory.items()} == {
            x710.resource_class: (x710.total, x710.total)}
        # No provider in the tree is one Nova would take for its own.
        for rp in in_tree(client, root).values():
            assert names.NOVA_PCI_TRAIT not in traits(client, rp["uuid"])


def test_a_former_provider_of_another_class_is_retired_not_renamed(
        tmp_path, client, nodename) -> None:
    """The device_spec changed the class too: the units on the former
    provider are not the new one's, which sync creates beside it."""
    conf = agent_host(tmp_path, nodename())
    tree = host_view(conf).tree
    x710 = tree.providers[0]
    _, uuids = former_host(client, tree)
    former = uuids[x710.name]
    Reporter(client).ensure_classes({"CUSTOM_OLD"}, SyncReport())
    generation = client.get(f"/resource_providers/{former}").body[
        "generation"]
    client.put(f"/resource_providers/{former}/inventories", {
        "resource_provider_generation": generation,
        "inventories": {"CUSTOM_OLD": {"total": 4}}})
    stranger = str(uuid.uuid4())
    allocate(client, stranger, {former: {"CUSTOM_OLD": 1}})

    report = host_view(conf).sync(Reporter(client), create_root=False)
    assert x710.former_name not in report.renamed_providers
    assert x710.name in report.created_providers
    assert report.kept_in_use == [x710.former_name]
    assert held(client, [stranger]) == {
        stranger: ({former: {"CUSTOM_OLD": 1}}, 1)}
    assert names.NOVA_PCI_TRAIT not in traits(client, former)
