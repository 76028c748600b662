"""Drive nova-compute's own ``ProviderTree`` from the virt driver's
``update_provider_tree(provider_tree, nodename, allocations=None)``.

The resource tracker hands the driver its cached tree of the compute
node; the driver edits it in place and the report client flushes the
difference to Placement (skipping what did not change).  This module
changes only the providers this library owns (those carrying its owner
trait, or named as it names them) and never the root's inventory or
traits.  ``provider_tree`` is duck-typed on nova's
nova.compute.provider_tree.ProviderTree (exists, new_child, data,
get_provider_uuids, update_inventory, update_traits, remove), so the
library does not import nova.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.tree import (
    PciProvider,
    ProviderTree,
    ledger_units,
)


@dataclasses.dataclass(frozen=True, slots=True)
class TreeUpdate:
    """What update_provider_tree changed."""

    created: tuple[str, ...]
    removed: tuple[str, ...]
    #: No longer in the host's view but possibly allocated: kept with all
    #: of their inventory reserved.
    kept_reserved: tuple[str, ...]
    healed: tuple[str, ...]
    #: (former name, name): providers found under their former names,
    #: whose allocations moved to the provider of the new name, removed.
    renamed: tuple[tuple[str, str], ...] = ()
    #: Former names still holding what they held: without
    #: ``allocations`` their units cannot move.  The virt driver raises
    #: nova's ReshapeNeeded, and nova calls again with every consumer's
    #: allocations (at service start).
    reshape_needed: tuple[str, ...] = ()


def update_provider_tree(provider_tree: Any, nodename: str,
                         tree: ProviderTree,
                         records: Sequence[LedgerRecord] = (),
                         allocations: dict[str, Any] | None = None
                         ) -> TreeUpdate:
    """Make ``provider_tree``'s children of ``nodename`` this host's PF
    providers; with ``allocations`` (the ``GET /allocations/C`` shape per
    consumer, as nova passes them), also heal the units of the consumers
    Placement has from the ledger ``records`` and remove stale providers
    nobody uses.  Without allocations a stale provider cannot be known
    to be free: it is kept, all reserved.  ``records`` must be read after
    nova read ``allocations`` (see _heal).

    A provider of ours under its former name (as this library named them
    before, carrying Nova's NOVA_PCI_TRAIT) is renamed the only way nova's
    tree allows, a reshape: with ``allocations``, every consumer's units
    on it move to the provider of the new name, whose inventory is made
    to hold them, and it is removed (nova's flush sends POST /reshaper,
    then deletes it).  Without, it is kept all reserved, listed in
    ``reshape_needed``.  No provider of ours keeps NOVA_PCI_TRAIT: with
    ``[pci] report_in_placement`` False nova-compute refuses to start on
    one, True it deletes it.
    """
    mine = {}
    for uuid in provider_tree.get_provider_uuids(nodename):
        data = provider_tree.data(uuid)
        if data.parent_uuid is not None and \
                names.OWNER_TRAIT in data.traits:
            mine[data.name] = data
    created = []
    formers: dict[str, PciProvider] = {}
    for provider in tree.providers:
        if not provider_tree.exists(provider.name):
            provider_tree.new_child(provider.name, nodename)
            created.append(provider.name)
        provider_tree.update_inventory(provider.name,
                                       provider.inventory())
        provider_tree.update_traits(provider.name, provider.traits)
        former = mine.get(provider.former_name or "")
        # Of another class (the device_spec changed too), its units are
        # not the new provider's: it is retired as a stale one.
        if former is not None and \
                set(former.inventory) <= {provider.resource_class}:
            formers[former.name] = provider
    renamed = []
    if allocations is not None:
        for former, provider in sorted(formers.items()):
            _rename(provider_tree, mine.pop(former), provider, allocations)
            renamed.append((former, provider.name))
    wanted = {p.name for p in tree.providers}
    removed, kept = [], []
    for name, data in sorted(mine.items()):
        if name in wanted:
            continue
        in_use = allocations is None or any(
            data.uuid in consumer.get("allocations", {})
            for consumer in allocations.values())
        if in_use:
            reserved = {rc: dict(inv, reserved=inv["total"])
                        for rc, inv in data.inventory.items()}
            provider_tree.update_inventory(name, reserved)
            provider_tree.update_traits(
                name, set(data.traits) - {names.NOVA_PCI_TRAIT})
            if name not in formers:
                kept.append(name)
        else:
            provider_tree.remove(name)
            removed.append(name)
    healed = []
    if allocations is not None:
        retired = {mine[name].uuid for name in kept}
        healed = _heal(provider_tree, tree, records, allocations, retired)
    return TreeUpdate(tuple(created), tuple(removed), tuple(kept),
                      tuple(healed), tuple(renamed),
                      tuple(sorted(formers)) if allocations is None else ())


def _rename(provider_tree: Any, former: Any, provider: PciProvider,
            allocations: dict[str, Any]) -> None:
    """Move every consumer's units from ``former`` (nova's data of it) to
    ``provider``, in place, and remove ``former``.  The units are the
    same VFs': the new provider's inventory is widened to hold them
    (Placement refuses a reshape that puts more on a provider than it
    offers, reserved included); the next update writes the host's."""
    target = provider_tree.data(provider.name).uuid
    used: dict[str, int] = {}
    for consumer in allocations.values():
        held = consumer.get("allocations", {})
        moved = held.pop(former.uuid, None)
        if moved is not None:
            into = held.setdefault(target, {"resources": {}})["resources"]
            for rc, n in moved.get("resources", {}).items():
                into[rc] = into.get(rc, 0) + n
        for rc, n in held.get(target, {}).get("resources", {}).items():
            used[rc] = used.get(rc, 0) + n
    provider_tree.update_inventory(
        provider.name, _holding(provider.inventory(), used))
    provider_tree.remove(former.name)


def _holding(inventory: Mapping[str, Mapping[str, Any]],
             used: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """``inventory`` with room for ``used`` units of each class."""
    out = {}
    for rc, inv in inventory.items():
        n = used.get(rc, 0)
        total = max(inv["total"], n)
        out[rc] = dict(inv, total=total, max_unit=max(inv["max_unit"], total),
                       reserved=min(inv["reserved"], total - n))
    return out


def _heal(provider_tree: Any, tree: ProviderTree,
          records: Sequence[LedgerRecord],
          allocations: dict[str, Any], retired: set[str]) -> list[str]:
    """As placement sync heals: each instance's units on this host's
    providers (the tree's and the retired ones still there) made the
    ledger's, its other allocations kept; an instance migrating away is
    left alone (its units here are the migration consumer's)."""
    uuids = {p.name: provider_tree.data(p.name).uuid
             for p in tree.providers}
    ours = set(uuids.values()) | retired
    healed = []
    # As nova: only consumers Placement has.  One nova read as empty
    # was deleted after it listed the providers' consumers (released
    # while the ledger was read before): writing it would create it
    # anew.  One it read whole is written back under the generation it
    # read, so a release since then makes nova's write fail, not
    # resurrect it; ``records`` must be read after ``allocations``.
    for consumer, by_name in sorted(ledger_units(tree, records)
                                    .wanted.items()):
        if not allocations.get(consumer, {}).get("allocations"):
            continue
        current = allocations[consumer]["allocations"]
        want = {uuids[name]: res for name, res in by_name.items()}
        have = {rp: dict(a.get("resources", {}))
                for rp, a in current.items() if rp in ours}
        if have == want:
            continue
        for rp in [rp for rp in current if rp in ours]:
            del current[rp]
        for rp, resources in want.items():
            current[rp] = {"resources": resources}
        healed.append(consumer)
    return healed
