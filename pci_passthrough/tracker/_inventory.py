"""The host's devices as the last scan found them and the device_specs
tag them: the assignable ones in pools of alike devices, the others
kept only so that explain can name them."""

import dataclasses

from pci_passthrough.config import devspec
from pci_passthrough.model import device_attrs
from pci_passthrough.model.device import DEV_TYPE_VF, PciDevice, ScanResult
from pci_passthrough.tracker._pools import Pool, PoolKey, pool_key


@dataclasses.dataclass(slots=True)
class Entry:
    """An assignable device with its tags, the attributes a flavor is
    matched against, and the pool of devices alike to it."""

    device: PciDevice
    tags: dict[str, str]
    attrs: dict[str, str]
    pool: Pool


@dataclasses.dataclass(frozen=True, slots=True)
class ScanDiff:
    """Which assignable devices a rescan added, removed or changed."""

    added: frozenset[str]
    removed: frozenset[str]
    changed: frozenset[str]


class Inventory:
    """The devices of the last scan (empty before the first)."""

    def __init__(self) -> None:
        #: Assignable devices by address.
        self.entries: dict[str, Entry] = {}
        #: Devices no device_spec matches, by address.
        self.unassignable: dict[str, PciDevice] = {}
        self.pools: dict[PoolKey, Pool] = {}
        #: PF address -> its assignable VFs.
        self.vfs_of: dict[str, list[str]] = {}
        #: Every device of the last scan, by address and as scanned.
        self.scanned: dict[str, PciDevice] = {}
        self.devices: tuple[PciDevice, ...] = ()

    def replace(self, scan: ScanResult,
                specs: devspec.DeviceSpecList) -> ScanDiff:
        """Take ``scan`` in place of the previous one.  Pools start with
        no free member: the availability index fills them."""
        old = {a: e.device for a, e in self.entries.items()}
        self.entries = {}
        self.unassignable = {}
        self.pools = {}
        self.vfs_of = {}
        self.scanned = scan.by_address()
        self.devices = tuple(scan.devices)
        for dev in scan.devices:
            tags = specs.match(dev)
            if tags is None:
                self.unassignable[dev.address] = dev
            else:
                self._add(dev, dict(tags))
        before, after = set(old), set(self.entries)
        return ScanDiff(
            added=frozenset(after - before),
            removed=frozenset(before - after),
            changed=frozenset(a for a in before & after
                              if old[a] != self.entries[a].device))

    def _add(self, dev: PciDevice, tags: dict[str, str]) -> None:
        key = pool_key(dev, tags)
        attrs = device_attrs.device_attrs(dev, tags)
        pool = self.pools.get(key)
        if pool is None:
            pool = Pool(key=key,
                        attrs={k: v for k, v in attrs.items()
                               if k != "address"},
                        dev_type=dev.dev_type, numa_node=dev.numa_node,
                        has_netdev=dev.netdev is not None)
            self.pools[key] = pool
        self.entries[dev.address] = Entry(dev, tags, attrs, pool)
        if dev.dev_type == DEV_TYPE_VF and dev.parent_addr:
            self.vfs_of.setdefault(dev.parent_addr, []).append(dev.address)

    def device(self, address: str) -> PciDevice | None:
        """The assignable device at ``address``, if any."""
        entry = self.entries.get(address)
        return entry.device if entry else None

    def parent(self, address: str) -> str | None:
        """The PF of the assignable VF at ``address``, if any."""
        entry = self.entries.get(address)
        return entry.device.parent_addr if entry else None

    def affected(self, address: str) -> list[str]:
        """A device and those whose availability depends on it: its PF
        and its VFs."""
        parent = self.parent(address)
        return [address, *([parent] if parent else []),
                *self.vfs_of.get(address, ())]
