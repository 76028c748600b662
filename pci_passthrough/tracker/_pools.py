"""Pools of interchangeable devices, as Nova's PciDeviceStats keeps them.

Devices with the same vendor, product, type, parent PF, NUMA node, tags
(special attributes included) and netdev presence are interchangeable, so
a flavor is matched against pools, not devices: matching costs grow with
the number of pools.
"""

import dataclasses
from collections.abc import Mapping

from pci_passthrough.model.device import PciDevice

PoolKey = tuple[object, ...]


def pool_key(dev: PciDevice, tags: Mapping[str, str]) -> PoolKey:
    return (dev.vendor_id, dev.product_id, dev.dev_type, dev.parent_addr,
            dev.numa_node, dev.netdev is not None,
            tuple(sorted(tags.items())))


@dataclasses.dataclass(slots=True)
class Pool:
    key: PoolKey
    #: Matching attributes shared by every member (no address).
    attrs: Mapping[str, str]
    dev_type: str
    numa_node: int | None
    has_netdev: bool
    #: Members free to claim now, in address order of insertion.
    free: dict[str, None] = dataclasses.field(default_factory=dict)
