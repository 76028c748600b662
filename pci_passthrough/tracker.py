"""The host's device tracker: who holds which device, crash-safe.

Every claim is all or nothing and recorded in the ledger before it
returns; memory changes only after the ledger committed, so a fault
mid-operation leaves both as they were.  Taking a PF makes its VFs
unavailable; taking a VF makes its PF unavailable until all its VFs are
free.  A device that disappears from sysfs while held is kept, reported,
and dropped when freed.

Several processes may share one ledger (the agent and the CLI): inside
each write transaction the tracker reloads the holders when another
connection has committed since it last looked, and the ledger's UNIQUE
address constraint is the last guard.

Every state change of a port is checked against the one table in
pci_passthrough.states.  Services and commands change claims through
HostAgent, which moves the ports' networks with them; the tracker alone
knows nothing of networks.
"""

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Sequence

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import devspec, exception, matching, sysfs_scan
from pci_passthrough.claims import (
    Allocation,
    DeviceVerdict,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.device import (
    DEV_TYPE_PF,
    DEV_TYPE_VF,
    PciDevice,
    ScanResult,
)
from pci_passthrough.flavors import FlavorSet, FlavorSpec
from pci_passthrough.instance_id import canonical_uuid
from pci_passthrough.ledger import Ledger, LedgerRecord
from pci_passthrough.netdev_name import is_valid_netdev_name
from pci_passthrough.pci_address import address_sort_key
from pci_passthrough.pools import Pool, PoolKey, pool_key
from pci_passthrough.settings import load_settings
from pci_passthrough.states import PortState, check_transition

LOG = logging.getLogger(__name__)
# Matching pools are cached per flavor; inline specs make new flavors at
# will, so the cache is emptied when it reaches this size.
_POOL_CACHE_SIZE = 256


@dataclasses.dataclass(slots=True)
class _Entry:
    device: PciDevice
    tags: dict[str, str]
    attrs: dict[str, str]
    pool: Pool


class HostTracker:
    """The assignable devices of one host and their claims.

    :param flavors: the configured flavors and special attributes.
    :param ledger: where every claim and free is recorded.
    """

    def __init__(self, flavors: FlavorSet, ledger: Ledger) -> None:
        self.flavors = flavors
        self._ledger = ledger
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._unassignable: dict[str, PciDevice] = {}
        self._pools: dict[PoolKey, Pool] = {}
        self._vfs_of: dict[str, list[str]] = {}
        self._held: dict[str, LedgerRecord] = {}
        self._held_vfs_of: dict[str, int] = {}
        self._pool_cache: dict[tuple[FlavorSpec, ...], list[Pool]] = {}
        self._version: int | None = None
        self._scanned: tuple[PciDevice, ...] = ()
        with self._lock:
            self._load(ledger.records())
            self._version = ledger.data_version()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  sysfs_root: str | None = None, *,
                  readonly_ledger: bool = False
                  ) -> tuple["HostTracker", ScanResult]:
        """Validate the whole configuration, open the ledger (read-only:
        see Ledger), scan sysfs."""
        settings = load_settings(conf)
        scan = sysfs_scan.scan(sysfs_root or settings.sysfs_root)
        tracker = cls(settings.flavors, Ledger(settings.state_path,
                                               readonly=readonly_ledger))
        tracker.update_devices(scan, settings.device_specs)
        return tracker, scan

    def close(self) -> None:
        self._ledger.close()

    # -- devices -----------------------------------------------------------

    def update_devices(self, scan: ScanResult,
                       specs: devspec.DeviceSpecList) -> UpdateReport:
        """Take a (re)scan: add new devices, drop vanished free ones, keep
        and report vanished held ones."""
        with self._lock:
            before = set(self._entries)
            old = {a: e.device for a, e in self._entries.items()}
            self._entries.clear()
            self._unassignable.clear()
            self._pools.clear()
            self._vfs_of.clear()
            self._pool_cache.clear()
            self._scanned = tuple(scan.devices)
            for dev in scan.devices:
                tags = specs.match(dev)
                if tags is None:
                    self._unassignable[dev.address] = dev
                    continue
                self._add(dev, dict(tags))
            # Parents may have changed (or were unknown before the first
            # scan): recount the held VFs of each PF.
            self._load(list(self._held.values()))
            after = set(self._entries)
            vanished = tuple(sorted((a for a in self._held
                                     if a not in after),
                                    key=address_sort_key))
            for address in vanished:
                LOG.warning("Device %s held by instance %s is gone from "
                            "sysfs; kept until freed", address,
                            self._held[address].instance_uuid)
            return UpdateReport(
                added=_sorted(after - before),
                removed=_sorted(before - after),
                changed=_sorted(a for a in before & after
                                if old[a] != self._entries[a].device),
                vanished_in_use=vanished)

    def devices(self) -> tuple[PciDevice, ...]:
        """Every device of the last scan (one tuple per scan: a caller may
        cache what it derives from it by identity)."""
        with self._lock:
            return self._scanned

    def records(self) -> list[LedgerRecord]:
        """The ledger's records: who holds which device."""
        with self._lock:
            self._sync(self._ledger.records)
            return list(self._held.values())

    def _add(self, dev: PciDevice, tags: dict[str, str]) -> None:
        key = pool_key(dev, tags)
        attrs = matching.device_attrs(dev, tags)
        pool = self._pools.get(key)
        if pool is None:
            pool = Pool(key=key,
                        attrs={k: v for k, v in attrs.items()
                               if k != "address"},
                        dev_type=dev.dev_type, numa_node=dev.numa_node,
                        has_netdev=dev.netdev is not None)
            self._pools[key] = pool
        self._entries[dev.address] = _Entry(dev, tags, attrs, pool)
        if dev.dev_type == DEV_TYPE_VF and dev.parent_addr:
            self._vfs_of.setdefault(dev.parent_addr, []).append(dev.address)

    def _available(self, address: str) -> bool:
        if address in self._held:
            return False
        dev = self._entries[address].device
        if dev.dev_type == DEV_TYPE_PF:
            return not self._held_vfs_of.get(address)
        return dev.parent_addr not in self._held

    def _refresh(self, addresses: Iterable[str]) -> None:
        """Recompute whether each device is free in its pool."""
        for address in addresses:
            entry = self._entries.get(address)
            if entry is None:
                continue
            if self._available(address):
                entry.pool.free[address] = None
            else:
                entry.pool.free.pop(address, None)

    def _affected(self, address: str, parent: str | None) -> list[str]:
        """A device and those whose availability depends on it."""
        return [address, *([parent] if parent else []),
                *self._vfs_of.get(address, ())]

    def _hold(self, rec: LedgerRecord) -> None:
        self._held[rec.address] = rec
        parent = self._parent(rec.address)
        if parent:
            self._held_vfs_of[parent] = self._held_vfs_of.get(parent, 0) + 1
        self._refresh(self._affected(rec.address, parent))

    def _unhold(self, address: str) -> None:
        if self._held.pop(address, None) is None:
            return
        parent = self._parent(address)
        if parent:
            self._held_vfs_of[parent] -= 1
            if not self._held_vfs_of[parent]:
                del self._held_vfs_of[parent]
        self._refresh(self._affected(address, parent))

    def _parent(self, address: str) -> str | None:
        entry = self._entries.get(address)
        return entry.device.parent_addr if entry else None

    def _load(self, records: Sequence[LedgerRecord]) -> None:
        self._held.clear()
        self._held_vfs_of.clear()
        for rec in records:
            self._held[rec.address] = rec
            parent = self._parent(rec.address)
            if parent:
                self._held_vfs_of[parent] = \
                    self._held_vfs_of.get(parent, 0) + 1
        self._refresh(self._entries)

    def _sync(self, records_fn: Callable[[], list[LedgerRecord]]) -> None:
        # Another process (the CLI, a second agent) committed since we
        # last looked: take the ledger's word for who holds what.
        version = self._ledger.data_version()
        if version != self._version:
            self._load(records_fn())
            self._version = version

    # -- claims ------------------------------------------------------------

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              within: Sequence[Collection[str]] | None = None
              ) -> list[Allocation]:
        """One device per port, all or nothing, recorded before return.

        :param within: per port, the only devices it may take (the VFs of
            the PF provider Placement allocated it on).
        :raises ClaimFailed: naming the port, its flavor and why no device
            serves it; nothing changed.
        """
        if within is not None and len(within) != len(ports):
            raise exception.InvalidPortRequest(
                port="-", reason=f"{len(within)} device sets for "
                                 f"{len(ports)} ports")
        instance = canonical_uuid(instance_uuid)
        if len({p.index for p in ports}) != len(ports):
            raise exception.InvalidPortRequest(
                port=",".join(str(p.index) for p in ports),
                reason="port indexes repeat")
        wanted = [(p, self._specs_of(p)) for p in ports]
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records)
                held = {r.port_index for r in self._held.values()
                        if r.instance_uuid == instance}
                for port in ports:
                    if port.index in held:
                        raise exception.InvalidPortRequest(
                            port=port.index,
                            reason=f"instance {instance} already holds a "
                                   f"device for this port")
                    check_transition(instance, port.index, PortState.NONE,
                                     PortState.CLAIMED)
                picks = self._select(instance, wanted, numa_cells, within)
                records = [LedgerRecord(
                    instance_uuid=instance, port_index=port.index,
                    address=address, state=PortState.CLAIMED,
                    flavor=port.flavor,
                    request=port.to_json(),
                    netdev=_recordable(
                        self._entries[address].device.netdev))
                    for port, address in zip(ports, picks, strict=True)]
                txn.add(records)
            # The ledger committed: memory follows, under the same lock
            # so that no other thread picks these devices meanwhile.
            for rec in records:
                self._hold(rec)
            LOG.info("Instance %s claimed %s", instance,
                     ", ".join(f"port {r.port_index}: {r.address}"
                               for r in records))
            return [self._allocation(r) for r in records]

    def _specs_of(self, port: PortRequest) -> tuple[FlavorSpec, ...]:
        if port.flavor is not None:
            return self.flavors.get(port.flavor)
        assert port.spec is not None
        return self.flavors.inline(port.spec, port.index)

    def _matching_pools(self, specs: tuple[FlavorSpec, ...]) -> list[Pool]:
        pools = self._pool_cache.get(specs)
        if pools is None:
            special = self.flavors.special_attributes
            pools = [p for p in self._pools.values()
                     if matching.first_mismatch(specs, p.attrs, special,
                                                ignore=("address",)) is None]
            if len(self._pool_cache) >= _POOL_CACHE_SIZE:
                self._pool_cache.clear()
            self._pool_cache[specs] = pools
        return pools

    def _select(self, instance: str,
                wanted: Sequence[tuple[PortRequest, tuple[FlavorSpec, ...]]],
                cells: Collection[int] | None,
                within: Sequence[Collection[str]] | None = None
                ) -> list[str]:
        taken: list[str] = []
        for n, (port, specs) in enumerate(wanted):
            allowed = None if within is None else frozenset(within[n])
            address = self._pick(specs, port.needs_netdev, cells, taken,
                                 allowed)
            if address is None:
                explanation = self._explain(specs, port.label, 1, cells,
                                            port.needs_netdev, taken)
                reason = explanation.summary()
                if allowed is not None:
                    reason = _within_reason(explanation, allowed)
                raise exception.ClaimFailed(
                    instance=instance, port=port.index, flavor=port.label,
                    reason=reason)
            taken.append(address)
        return taken

    def _pick(self, specs: tuple[FlavorSpec, ...], needs_netdev: bool,
              cells: Collection[int] | None,
              taken: Sequence[str],
              allowed: Collection[str] | None = None) -> str | None:
        policy = specs[0].numa_policy
        # A fast path when every alternative pins addresses: only those
        # can serve.  Whether a device serves is decided per device below,
        # by the same check explain makes (a pool knows no address).
        pinned = {s.get("address") for s in specs}
        if None in pinned:
            pinned = set()
        special = self.flavors.special_attributes
        pools = [p for p in self._matching_pools(specs)
                 if p.free and (not needs_netdev or (
                     p.dev_type == DEV_TYPE_VF and p.has_netdev))
                 and matching.numa_mismatch(policy, p.numa_node,
                                            cells) is None]
        if policy == "preferred" and cells is not None:
            # Best effort: the instance's own cells first.
            pools.sort(key=lambda p: p.numa_node not in cells)
        for pool in pools:
            for address in pool.free:
                if pinned and address not in pinned:
                    continue
                if allowed is not None and address not in allowed:
                    continue
                if self._conflicts(address, taken):
                    continue
                if matching.first_mismatch(
                        specs, self._entries[address].attrs,
                        special) is not None:
                    continue
                return address
        return None

    def _conflicts(self, address: str, taken: Sequence[str]) -> bool:
        """Would ``address`` clash with devices this claim already took
        (the same device, its PF, or a VF of it)?"""
        if not taken:
            return False
        parent = self._parent(address)
        for other in taken:
            if other in (address, parent) or \
                    self._parent(other) == address:
                return True
        return False

    def allocate(self, instance_uuid: str) -> list[Allocation]:
        """Claimed -> plugged (the instance's networks exist)."""
        return self.transition(instance_uuid, PortState.PLUGGED)

    def transition(self, instance_uuid: str,
                   state: PortState) -> list[Allocation]:
        """Move every port of the instance to ``state``, all or nothing.

        :raises InvalidStateTransition: a port's current state may not
            change to ``state`` (see pci_passthrough.states), or the
            instance holds nothing; nothing changed.
        """
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records)
                mine = [r for r in self._held.values()
                        if r.instance_uuid == instance]
                if not mine:
                    # Freed meanwhile (by another process, say): a change
                    # from "no claim" that the table must allow.
                    check_transition(instance, "-", PortState.NONE, state)
                for rec in mine:
                    check_transition(instance, rec.port_index, rec.state,
                                     state)
                txn.set_state(instance, state)
            for rec in mine:
                self._held[rec.address] = dataclasses.replace(
                    rec, state=state)
            return self.allocations(instance)

    def free(self, instance_uuid: str) -> list[Allocation]:
        """Free everything the instance holds; idempotent."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records)
                for rec in self._held.values():
                    if rec.instance_uuid == instance:
                        check_transition(instance, rec.port_index,
                                         rec.state, PortState.RELEASED)
                gone = txn.remove_instance(instance)
            freed = [self._allocation(r) for r in gone]
            for rec in gone:
                self._unhold(rec.address)
            if gone:
                LOG.info("Instance %s freed %s", instance,
                         ", ".join(r.address for r in gone))
            return freed

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state: available, claimed, plugged,
        or unavailable (its PF, or one of its VFs, is held); a held device
        gone from sysfs is listed as "vanished"."""
        with self._lock:
            self._sync(self._ledger.records)
            states = {}
            for address in sorted({*self._entries, *self._held},
                                  key=address_sort_key):
                rec = self._held.get(address)
                if address not in self._entries:
                    states[address] = "vanished"
                elif rec is not None:
                    states[address] = rec.state
                elif self._available(address):
                    states[address] = "available"
                else:
                    states[address] = "unavailable"
            return states

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        with self._lock:
            self._sync(self._ledger.records)
            recs = [r for r in self._held.values()
                    if instance_uuid is None
                    or r.instance_uuid == instance_uuid]
            recs.sort(key=lambda r: (r.instance_uuid, r.port_index))
            return [self._allocation(r) for r in recs]

    def port_requests(self, instance_uuid: str) -> dict[int, PortRequest]:
        """The request each held port of the instance was claimed with."""
        with self._lock:
            self._sync(self._ledger.records)
            return {r.port_index: PortRequest.from_json(r.port_index,
                                                        r.request)
                    for r in self._held.values()
                    if r.instance_uuid == instance_uuid}

    def _allocation(self, rec: LedgerRecord) -> Allocation:
        entry = self._entries.get(rec.address)
        port = PortRequest.from_json(rec.port_index, rec.request)
        return Allocation(
            instance_uuid=rec.instance_uuid, port_index=rec.port_index,
            address=rec.address,
            # sysfs is right about the name: udev may have renamed it.
            netdev=entry.device.netdev if entry else rec.netdev,
            flavor=rec.flavor, state=rec.state, mac=port.mac,
            vlan=port.vlan,
            parent_addr=entry.device.parent_addr if entry else None,
            vanished=entry is None)

    # -- explain -----------------------------------------------------------

    def explain(self, flavor: str | PortRequest, count: int = 1,
                numa_cells: Collection[int] | None = None,
                needs_netdev: bool = True) -> Explanation:
        """For every device of the last scan: does it serve the flavor,
        and if not, the first reason."""
        if count < 1:
            raise exception.InvalidPortRequest(
                port="-", reason=f"count {count} must be at least 1")
        with self._lock:
            self._sync(self._ledger.records)
            if isinstance(flavor, PortRequest):
                specs, label = self._specs_of(flavor), flavor.label
            else:
                specs, label = self.flavors.get(flavor), flavor
            return self._explain(specs, label, count, numa_cells,
                                 needs_netdev, ())

    def _explain(self, specs: tuple[FlavorSpec, ...], label: str,
                 count: int, cells: Collection[int] | None,
                 needs_netdev: bool, taken: Sequence[str]) -> Explanation:
        special = self.flavors.special_attributes
        policy = specs[0].numa_policy
        verdicts = []
        for address in sorted([*self._entries, *self._unassignable],
                              key=address_sort_key):
            entry = self._entries.get(address)
            if entry is None:
                reason: str | None = "not assignable: no device_spec " \
                                     "matches it"
            else:
                reason = self._device_reason(entry, specs, special, policy,
                                             cells, needs_netdev, taken)
            verdicts.append(DeviceVerdict(address, reason is None, reason))
        # The same selection a claim makes, so explain never disagrees.
        picked = list(taken)
        for _ in range(count):
            pick = self._pick(specs, needs_netdev, cells, picked)
            if pick is None:
                break
            picked.append(pick)
        satisfiable = len(picked) - len(taken) == count
        return Explanation(flavor=label, count=count,
                           satisfiable=satisfiable,
                           devices=tuple(verdicts))

    def _device_reason(self, entry: _Entry, specs: tuple[FlavorSpec, ...],
                       special: frozenset[str], policy: str | None,
                       cells: Collection[int] | None, needs_netdev: bool,
                       taken: Sequence[str]) -> str | None:
        dev = entry.device
        reason = matching.first_mismatch(specs, entry.attrs, special)
        if reason is not None:
            return reason
        holder = self._held.get(dev.address)
        if holder is not None:
            return (f"in use by instance {holder.instance_uuid} port "
                    f"{holder.port_index}")
        if dev.address in taken:
            return "taken by an earlier port of this request"
        if dev.parent_addr and dev.parent_addr in self._held:
            return (f"unavailable: its PF {dev.parent_addr} is in use by "
                    f"instance {self._held[dev.parent_addr].instance_uuid}")
        if self._held_vfs_of.get(dev.address):
            return (f"unavailable: {self._held_vfs_of[dev.address]} of its "
                    f"VFs are in use")
        if needs_netdev and (dev.dev_type != DEV_TYPE_VF
                             or dev.netdev is None):
            if dev.dev_type != DEV_TYPE_VF:
                return "not a VF, so it cannot back a macvtap interface"
            driver = dev.driver or "no driver"
            return (f"no netdev (bound to {driver}), so it cannot back a "
                    f"macvtap interface")
        return matching.numa_mismatch(policy, dev.numa_node, cells)


def _within_reason(explanation: Explanation,
                   allowed: Collection[str]) -> str:
    """Why none of the devices a port was confined to serves it."""
    shown = [f"{v.address}: {v.reason or 'serves'}"
             for v in explanation.devices if v.address in allowed]
    if not shown:
        return "none of the devices it was allocated is on this host"
    return ("none of the devices it was allocated serves it ("
            + "; ".join(shown) + ")")


def _recordable(netdev: str | None) -> str | None:
    # The ledger refuses a row whose netdev the kernel would not accept
    # as a name; such a name read from sysfs is not recorded.
    return netdev if is_valid_netdev_name(netdev) else None


def _sorted(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(addresses, key=address_sort_key))
