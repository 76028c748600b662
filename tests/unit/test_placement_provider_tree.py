"""update_provider_tree's healing never writes back an instance nova read
as gone, and its renaming of providers under their former names loses
no unit.  nova is not installed here: a small tree with the calls
update_provider_tree makes stands in for nova's ProviderTree
(tests/nova_compat runs the same function against nova's own)."""

import dataclasses
import uuid

from pci_passthrough.fixtures.nova_provider_tree import (
    NovaProviderTree,
    ProviderData,
)
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.provider_tree import update_provider_tree
from pci_passthrough.placement.tree import PciProvider, ProviderTree

NODE = "cmp1"
CX6 = PciProvider(
    name="cmp1_0000:5E:00.0_pcipt", pf_address="0000:5e:00.0",
    resource_class="CUSTOM_PCI_15B3_101E",
    traits=frozenset({names.OWNER_TRAIT}),
    vfs=("0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4"),
    former_name="cmp1_0000:5E:00.0")
TREE = ProviderTree(NODE, (CX6,))


def NovaTree() -> NovaProviderTree:
    return NovaProviderTree(NODE)


def held(instance: str, address: str) -> LedgerRecord:
    return LedgerRecord(instance_uuid=instance, port_index=0,
                        address=address, state="plugged", flavor="grp1",
                        request="{}", netdev=None)


def test_only_consumers_nova_read_whole_are_healed() -> None:
    pt = NovaTree()
    update_provider_tree(pt, NODE, TREE)
    cx6 = pt.data(CX6.name).uuid
    kept, gone = str(uuid.uuid4()), str(uuid.uuid4())
    # Nova listed both on the provider, then read each: ``gone`` was
    # deleted in between (released here meanwhile), and Placement
    # answered it with no allocations and no generation.
    allocations = {
        kept: {"allocations": {pt.root.uuid: {"resources": {"VCPU": 1}}},
               "consumer_generation": 3},
        gone: {"allocations": {}}}
    records = [held(kept, "0000:5e:00.2"), held(gone, "0000:5e:00.3")]
    update = update_provider_tree(pt, NODE, TREE, records, allocations)
    assert update.healed == (kept,)
    assert allocations[kept] == {
        "allocations": {pt.root.uuid: {"resources": {"VCPU": 1}},
                        cx6: {"resources": {CX6.resource_class: 1}}},
        "consumer_generation": 3}
    assert allocations[gone] == {"allocations": {}}


def former_tree() -> tuple[NovaProviderTree, ProviderData]:
    """nova's tree of a host an earlier release reported: CX6 under its
    former name, with Nova's trait."""
    pt = NovaTree()
    former = ProviderData(
        str(CX6.former_name), str(uuid.uuid4()), pt.root.uuid,
        {CX6.resource_class: dict(CX6.inventory()[CX6.resource_class])},
        CX6.traits | {names.NOVA_PCI_TRAIT})
    pt.providers[former.name] = former
    return pt, former


def test_a_former_name_waits_for_the_allocations_without_nova_trait(
        ) -> None:
    pt, former = former_tree()
    update = update_provider_tree(pt, NODE, TREE)
    assert update.reshape_needed == (former.name,)
    assert update.renamed == () and update.kept_reserved == ()
    assert update.created == (CX6.name,)
    # Nova's check of its own providers finds none: it starts.
    assert not any(names.NOVA_PCI_TRAIT in p.traits
                   for p in pt.providers.values())
    inv = pt.data(former.name).inventory[CX6.resource_class]
    assert inv["reserved"] == inv["total"] == 3


def test_a_former_name_hands_every_unit_to_the_new_one() -> None:
    pt, former = former_tree()
    update_provider_tree(pt, NODE, TREE)
    new = pt.data(CX6.name).uuid
    kept, stranger, migration = (str(uuid.uuid4()) for _ in range(3))
    allocations = {
        kept: {"allocations": {
            pt.root.uuid: {"resources": {"VCPU": 1}},
            former.uuid: {"generation": 4,
                          "resources": {CX6.resource_class: 1}}},
            "consumer_generation": 3},
        # Units no ledger record explains move all the same.
        stranger: {"allocations": {former.uuid: {
            "resources": {CX6.resource_class: 2}}},
            "consumer_generation": 1},
        migration: {"allocations": {pt.root.uuid: {
            "resources": {"VCPU": 2}}}, "consumer_generation": 7}}
    records = [held(kept, "0000:5e:00.2")]
    update = update_provider_tree(pt, NODE, TREE, records, allocations)
    assert update.renamed == ((former.name, CX6.name),)
    assert update.reshape_needed == () and update.healed == ()
    assert not pt.exists(former.name)
    assert allocations == {
        kept: {"allocations": {
            pt.root.uuid: {"resources": {"VCPU": 1}},
            new: {"resources": {CX6.resource_class: 1}}},
            "consumer_generation": 3},
        stranger: {"allocations": {new: {
            "resources": {CX6.resource_class: 2}}},
            "consumer_generation": 1},
        migration: {"allocations": {pt.root.uuid: {
            "resources": {"VCPU": 2}}}, "consumer_generation": 7}}
    assert pt.data(CX6.name).inventory == CX6.inventory()


def test_a_reserved_pf_makes_room_for_the_units_it_receives() -> None:
    """Placement refuses a reshape that puts more units on a provider
    than it offers: the VFs of a PF without carrier (all reserved) keep
    their units through the rename."""
    pt, former = former_tree()
    reserved = dataclasses.replace(CX6, reserved=3)
    tree = ProviderTree(NODE, (reserved,))
    consumer = str(uuid.uuid4())
    allocations = {consumer: {"allocations": {former.uuid: {
        "resources": {CX6.resource_class: 2}}}, "consumer_generation": 1}}
    update_provider_tree(pt, NODE, tree, (), allocations)
    inv = pt.data(CX6.name).inventory[CX6.resource_class]
    assert (inv["total"], inv["reserved"], inv["max_unit"]) == (3, 1, 3)
    # The next update reserves the PF's VFs again.
    update_provider_tree(pt, NODE, tree)
    assert pt.data(CX6.name).inventory == reserved.inventory()


def test_a_stale_provider_kept_drops_nova_trait() -> None:
    pt, former = former_tree()
    other = ProviderTree(NODE, ())
    update = update_provider_tree(pt, NODE, other)
    assert update.kept_reserved == (former.name,)
    assert names.NOVA_PCI_TRAIT not in pt.data(former.name).traits
    assert names.OWNER_TRAIT in pt.data(former.name).traits


def test_a_former_name_of_another_class_is_retired_not_renamed() -> None:
    """The device_spec changed the class as well: the units it holds
    cannot be the new provider's."""
    pt, former = former_tree()
    former.inventory = {"CUSTOM_OLD": {"total": 3, "reserved": 0}}
    consumer = str(uuid.uuid4())
    allocations = {consumer: {"allocations": {former.uuid: {
        "resources": {"CUSTOM_OLD": 1}}}, "consumer_generation": 1}}
    update = update_provider_tree(pt, NODE, TREE, (), allocations)
    assert (update.renamed, update.kept_reserved) == ((), (former.name,))
    assert allocations[consumer]["allocations"] == {former.uuid: {
        "resources": {"CUSTOM_OLD": 1}}}
    assert names.NOVA_PCI_TRAIT not in pt.data(former.name).traits
