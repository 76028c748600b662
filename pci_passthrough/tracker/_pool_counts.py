"""The VF counts of every pool, for the metrics."""

from typing import TYPE_CHECKING

from pci_passthrough.model.pci_address import address_sort_key
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker._pools import PoolKey
from pci_passthrough.tracker.filters import HostFacts, state_drop

if TYPE_CHECKING:
    # prometheus-client costs 50 ms to import: only pool_counts needs it.
    from pci_passthrough.metrics import PoolCounts


def pool_counts(inventory: Inventory,
                facts: HostFacts) -> list["PoolCounts"]:
    """Per PF and pool of its VFs: how many VFs there are, free, held,
    and not free because the PF is unhealthy (a PF matched by a
    device_spec as a whole device is not counted)."""
    from pci_passthrough.metrics import PoolCounts

    held = facts.holdings.held
    counts: dict[tuple[str, PoolKey], list[int]] = {}
    tags_of: dict[PoolKey, dict[str, str]] = {}
    for address, entry in inventory.entries.items():
        dev = entry.device
        pf = dev.parent_addr
        if not dev.is_vf or pf is None:
            continue
        tags_of[entry.pool.key] = entry.tags
        row = counts.setdefault((pf, entry.pool.key), [0, 0, 0, 0])
        row[0] += 1
        if address in held:
            row[2] += 1
        elif address in entry.pool.free:
            # The availability index: the state filter passes it.
            row[1] += 1
        else:
            dropped = state_drop(dev, facts)
            if dropped is not None and dropped[0].name == "unhealthy":
                row[3] += 1
    return [PoolCounts(pf=pf, tags=dict(tags_of[key]), total=total,
                       free=free, held=held_, unhealthy=sick)
            for (pf, key), (total, free, held_, sick)
            in sorted(counts.items(),
                      key=lambda kv: address_sort_key(kv[0][0]))]
