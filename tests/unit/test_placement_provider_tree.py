"""update_provider_tree's healing never writes back an instance nova read
as gone.  nova is not installed here: a small tree with the calls
update_provider_tree makes stands in for nova's ProviderTree
(tests/nova_compat runs the same function against nova's own)."""

import dataclasses
import uuid

from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.placement.provider_tree import update_provider_tree
from pci_passthrough.placement.tree import PciProvider, ProviderTree

NODE = "cmp1"
CX6 = PciProvider(
    name="cmp1_0000:5E:00.0", pf_address="0000:5e:00.0",
    resource_class="CUSTOM_PCI_15B3_101E", traits=frozenset(),
    vfs=("0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4"))
TREE = ProviderTree(NODE, (CX6,))


@dataclasses.dataclass
class Data:
    name: str
    uuid: str
    parent_uuid: str | None
    inventory: dict = dataclasses.field(default_factory=dict)
    traits: frozenset = frozenset()


class NovaTree:
    """nova's ProviderTree, as far as update_provider_tree uses it."""

    def __init__(self) -> None:
        self.root = Data(NODE, str(uuid.uuid4()), None)
        self.providers = {NODE: self.root}

    def get_provider_uuids(self, name):
        return [p.uuid for p in self.providers.values()]

    def data(self, name_or_uuid):
        return next(p for p in self.providers.values()
                    if name_or_uuid in (p.name, p.uuid))

    def exists(self, name):
        return name in self.providers

    def new_child(self, name, parent):
        self.providers[name] = Data(name, str(uuid.uuid4()),
                                    self.data(parent).uuid)

    def update_inventory(self, name, inventory):
        self.providers[name].inventory = inventory

    def update_traits(self, name, traits):
        self.providers[name].traits = frozenset(traits)

    def remove(self, name):
        del self.providers[name]


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
