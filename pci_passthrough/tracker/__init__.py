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
pci_passthrough.model.states.  Services and commands change claims through
HostAgent, which moves the ports' networks with them; the tracker alone
knows nothing of networks.
"""

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import FlavorSet, FlavorSpec
from pci_passthrough.config.settings import load_settings
from pci_passthrough.discovery import health, sysfs_scan
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger import Ledger, LedgerRecord
from pci_passthrough.model import device_attrs
from pci_passthrough.model.claims import (
    Allocation,
    DeviceVerdict,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.model.device import (
    DEV_TYPE_PF,
    DEV_TYPE_VF,
    PciDevice,
    ScanResult,
)
from pci_passthrough.model.instance_id import canonical_uuid
from pci_passthrough.model.netdev_name import is_valid_netdev_name
from pci_passthrough.model.pci_address import address_sort_key
from pci_passthrough.model.states import PortState, check_transition
from pci_passthrough.tracker import matching
from pci_passthrough.tracker._pools import Pool, PoolKey, pool_key

if TYPE_CHECKING:
    # prometheus-client costs 50 ms to import: only pool_counts needs it.
    from pci_passthrough.metrics import PoolCounts

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
        # Devices whose netdev state, journalled before a plug, is not
        # restored yet: never handed out until it is.
        self._journalled: set[str] = set()
        self._pool_cache: dict[tuple[FlavorSpec, ...], list[Pool]] = {}
        # Every device of the last scan (assignable or not), and the PFs
        # that cannot serve their VFs now with the reason.
        self._scanned: dict[str, PciDevice] = {}
        self._unhealthy: dict[str, str] = {}
        self._version: int | None = None
        self._devices: tuple[PciDevice, ...] = ()
        with self._lock:
            self._journalled = set(ledger.journals())
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
            scanned, self._scanned = self._scanned, scan.by_address()
            was_unhealthy = self._unhealthy
            self._unhealthy = health.pf_problems(scan.devices)
            self._devices = tuple(scan.devices)
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
                vanished_in_use=vanished,
                **self._health_changes(scanned, was_unhealthy))

    def _health_changes(self, scanned: dict[str, PciDevice],
                        was_unhealthy: dict[str, str]
                        ) -> dict[str, tuple[str, ...]]:
        """What changed in the PFs' health since the previous scan,
        logged for the operator."""
        now = self._scanned
        numvfs_changed, rebound_vfs = [], []
        for address, dev in now.items():  # one pass: 16k VFs are common
            prev = scanned.get(address)
            if prev is None or (prev.driver, prev.numvfs) == (
                    dev.driver, dev.numvfs):
                continue
            if dev.dev_type == DEV_TYPE_PF and prev.numvfs != dev.numvfs:
                numvfs_changed.append(address)
            elif dev.dev_type == DEV_TYPE_VF and prev.driver != dev.driver:
                rebound_vfs.append(address)
        numvfs, rebound = _sorted(numvfs_changed), _sorted(rebound_vfs)
        unhealthy = _sorted(a for a, why in self._unhealthy.items()
                            if was_unhealthy.get(a) != why)
        recovered = _sorted(a for a in was_unhealthy
                            if a in now and a not in self._unhealthy)
        for address in numvfs:
            LOG.warning("PF %s now has %s VFs enabled (was %s)", address,
                        now[address].numvfs, scanned[address].numvfs)
        for address in rebound:
            LOG.warning("VF %s was rebound from driver %s to %s", address,
                        scanned[address].driver, now[address].driver)
        for address in unhealthy:
            held = [a for a in self._vfs_of.get(address, ())
                    if a in self._held]
            LOG.warning("PF %s %s: its VFs are not given out%s", address,
                        self._unhealthy[address],
                        f"; {len(held)} held VF(s) kept" if held else "")
        for address in recovered:
            LOG.info("PF %s is healthy again: its VFs may be claimed",
                     address)
        return {"numvfs_changed": numvfs, "rebound": rebound,
                "unhealthy": unhealthy, "recovered": recovered}

    def scanned_devices(self) -> tuple[PciDevice, ...]:
        """Every device of the last scan (one tuple per scan: a caller may
        cache what it derives from it by identity)."""
        with self._lock:
            return self._devices

    def records(self) -> list[LedgerRecord]:
        """The ledger's records: who holds which device."""
        with self._lock:
            self._sync(self._ledger.records)
            return list(self._held.values())

    def _add(self, dev: PciDevice, tags: dict[str, str]) -> None:
        key = pool_key(dev, tags)
        attrs = device_attrs.device_attrs(dev, tags)
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
        if address in self._held or address in self._journalled:
            return False
        dev = self._entries[address].device
        if address in self._unhealthy or dev.parent_addr in self._unhealthy:
            return False
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

    def _sync(self, records_fn: Callable[[], list[LedgerRecord]],
              journals_fn: Callable[[], Collection[str]] | None = None
              ) -> None:
        # Another process (the CLI, a second agent) committed since we
        # last looked: take the ledger's word for who holds what.
        version = self._ledger.data_version()
        if version != self._version:
            self._journalled = set((journals_fn or self._ledger.journals)())
            self._load(records_fn())
            self._version = version

    # -- claims ------------------------------------------------------------

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              state: PortState = PortState.CLAIMED,
              lease_started: float | None = None,
              within: Sequence[Collection[str]] | None = None
              ) -> list[Allocation]:
        """One device per port, all or nothing, recorded before return.

        :param state: CLAIMED, or INCOMING for a live migration's
            destination, whose lease starts at ``lease_started``.
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
                self._sync(txn.records, txn.journals)
                held = {r.port_index for r in self._held.values()
                        if r.instance_uuid == instance}
                for port in ports:
                    if port.index in held:
                        raise exception.InvalidPortRequest(
                            port=port.index,
                            reason=f"instance {instance} already holds a "
                                   f"device for this port")
                    check_transition(instance, port.index, PortState.NONE,
                                     state)
                picks = self._select(instance, wanted, numa_cells, within)
                records = [LedgerRecord(
                    instance_uuid=instance, port_index=port.index,
                    address=address, state=state,
                    flavor=port.flavor,
                    request=port.to_json(),
                    netdev=_recordable(
                        self._entries[address].device.netdev))
                    for port, address in zip(ports, picks, strict=True)]
                txn.add(records)
                if lease_started is not None:
                    txn.set_lease(instance, lease_started)
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

    def transition(self, instance_uuid: str, state: PortState, *,
                   lease_started: float | None = None
                   ) -> list[Allocation]:
        """Move every port of the instance to ``state``, all or nothing.

        Moving to INCOMING or OUTGOING starts the instance's migration
        lease at ``lease_started`` (unless one runs already); moving to
        PLUGGED ends it.

        :raises InvalidStateTransition: a port's current state may not
            change to ``state`` (see pci_passthrough.model.states), or the
            instance holds nothing; nothing changed.
        """
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records, txn.journals)
                mine = [r for r in self._held.values()
                        if r.instance_uuid == instance]
                if not mine:
                    # Freed meanwhile (by another process, say).  Only a
                    # claim starts from "no claim", and a claim is not a
                    # transition: even NONE -> INCOMING is refused here.
                    raise exception.InvalidStateTransition(
                        instance=instance, port="-", old=PortState.NONE,
                        new=state, allowed="nothing but a new claim")
                for rec in mine:
                    check_transition(instance, rec.port_index, rec.state,
                                     state)
                txn.set_state(instance, state)
                if state == PortState.PLUGGED:
                    txn.forget_lease(instance)
                elif lease_started is not None:
                    txn.set_lease(instance, lease_started)
            for rec in mine:
                self._held[rec.address] = dataclasses.replace(
                    rec, state=state)
            return self.allocations(instance)

    def free(self, instance_uuid: str) -> list[Allocation]:
        """Free everything the instance holds; idempotent."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records, txn.journals)
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

    def device(self, address: str) -> PciDevice | None:
        """The assignable device at ``address`` in the last scan."""
        with self._lock:
            entry = self._entries.get(address)
            return entry.device if entry else None

    def devices(self) -> dict[str, PciDevice]:
        """The assignable devices of the last scan, by address."""
        with self._lock:
            return {a: e.device for a, e in self._entries.items()}

    # -- health and metrics -------------------------------------------------

    def unhealthy_pfs(self) -> dict[str, str]:
        """PF address -> why it cannot serve its VFs now (last scan)."""
        with self._lock:
            return dict(self._unhealthy)

    def _unhealthy_reason(self, dev: PciDevice) -> str | None:
        if dev.address in self._unhealthy:
            return f"unhealthy: PF {dev.address} " \
                f"{self._unhealthy[dev.address]}"
        pf = dev.parent_addr
        if pf is not None and pf in self._unhealthy:
            return f"unhealthy: its PF {pf} {self._unhealthy[pf]}"
        return None

    def pool_counts(self) -> list["PoolCounts"]:
        """The VF counts of every pool, for the metrics: labelled by the
        VFs' PF and the pool's tags (a PF matched by a device_spec as a
        whole device is not counted).  Held VFs are ``held``; free ones
        ``free``; the others whose PF is unhealthy ``unhealthy``."""
        from pci_passthrough.metrics import PoolCounts

        with self._lock:
            self._sync(self._ledger.records)
            counts: dict[tuple[str, PoolKey], list[int]] = {}
            tags_of: dict[PoolKey, dict[str, str]] = {}
            for address, entry in self._entries.items():
                dev = entry.device
                pf = dev.parent_addr
                if not dev.is_vf or pf is None:
                    continue
                tags_of[entry.pool.key] = entry.tags
                row = counts.setdefault((pf, entry.pool.key), [0, 0, 0, 0])
                row[0] += 1
                if address in self._held:
                    row[2] += 1
                elif address in entry.pool.free:
                    row[1] += 1
                elif self._unhealthy_reason(dev) is not None:
                    row[3] += 1
            return [PoolCounts(pf=pf, tags=dict(tags_of[key]), total=total,
                               free=free, held=held, unhealthy=sick)
                    for (pf, key), (total, free, held, sick)
                    in sorted(counts.items(),
                              key=lambda kv: address_sort_key(kv[0][0]))]

    # -- VF journal and leases ----------------------------------------------

    def journal(self, address: str, text: str) -> bool:
        """Journal the device's netdev state unless a journal is kept
        already (the first one is the state before any plug); True when
        this call wrote it."""
        with self._lock, self._ledger.transaction() as txn:
            if address in txn.journals():
                return False
            txn.journal(address, text)
            self._journalled.add(address)
            return True

    def forget_journal(self, address: str) -> None:
        """The device's netdev state was restored: it may be handed out
        again."""
        with self._lock:
            with self._ledger.transaction() as txn:
                txn.forget_journal(address)
            self._journalled.discard(address)
            self._refresh(self._affected(address, self._parent(address)))

    def journals(self) -> dict[str, NetdevState]:
        with self._lock:
            return self._ledger.journals()

    def leases(self) -> dict[str, float]:
        """instance -> when its migration lease started."""
        with self._lock:
            return self._ledger.leases()

    def set_netdev(self, address: str, netdev: str) -> None:
        """Record the name udev gave the held device's netdev."""
        with self._lock:
            with self._ledger.transaction() as txn:
                self._sync(txn.records, txn.journals)
                txn.set_netdev(address, _recordable(netdev))
            rec = self._held.get(address)
            if rec is not None:
                self._held[address] = dataclasses.replace(
                    rec, netdev=_recordable(netdev))

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
                elif self._unhealthy_reason(
                        self._entries[address].device) is not None:
                    states[address] = "unhealthy"
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
        sick = self._unhealthy_reason(dev)
        if sick is not None:
            return sick
        if dev.address in self._journalled:
            return ("its netdev's state from before its last plug is not "
                    "restored yet (pci-passthrough doctor --fix restores "
                    "it)")
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
