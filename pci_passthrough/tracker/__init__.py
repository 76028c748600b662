"""The host's device tracker: who holds which device, crash-safe.

Every claim is all or nothing and recorded in the ledger before it
returns.  Taking a PF makes its VFs unavailable; taking a VF makes its
PF unavailable until all its VFs are free.  A device that disappears
from sysfs while held is kept, reported, and dropped when freed.

Whether a device can serve a request, and why not, is decided in one
place, :mod:`pci_passthrough.tracker.filters`, which claims, explain,
the device states and the metrics all read.  Services and commands
change claims through HostAgent, which moves the ports' networks with
them; the tracker alone knows nothing of networks.

HostTracker is a facade over parts of one concern each: the inventory
of scanned devices, the holdings mirrored from the ledger, PF health,
the availability index, selection, explain, transitions and the pool
counts.
"""

import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import FlavorSet, FlavorSpec
from pci_passthrough.config.settings import load_settings
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger import LeaseStart, Ledger, LedgerRecord
from pci_passthrough.model.claims import (
    Allocation,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.model.device import PciDevice, ScanResult
from pci_passthrough.model.pci_address import address_sort_key
from pci_passthrough.model.states import PortState
from pci_passthrough.tracker._availability import AvailabilityIndex
from pci_passthrough.tracker._health import PfHealth
from pci_passthrough.tracker._holdings import Holdings
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker._pool_counts import pool_counts
from pci_passthrough.tracker._selection import Selector
from pci_passthrough.tracker._transitions import Transitions
from pci_passthrough.tracker.filters import HostFacts

if TYPE_CHECKING:
    from pci_passthrough.metrics import PoolCounts

__all__ = ["HostTracker"]

LOG = logging.getLogger(__name__)


class HostTracker:
    """The assignable devices of one host and their claims.

    :param flavors: the configured flavors and special attributes.
    :param ledger: where every claim and free is recorded.
    """

    def __init__(self, flavors: FlavorSet, ledger: Ledger) -> None:
        self.flavors = flavors
        self._ledger = ledger
        self._lock = threading.RLock()
        self._inventory = Inventory()
        self._holdings = Holdings(ledger, self._inventory)
        self._health = PfHealth()
        self._facts = HostFacts(self._holdings, self._health)
        self._index = AvailabilityIndex(self._inventory, self._facts)
        self._selector = Selector(flavors, self._inventory, self._facts)
        self._transitions = Transitions(ledger, self._lock,
                                        self._inventory, self._holdings,
                                        self._index, self._selector)

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

    @contextmanager
    def _synced(self) -> Iterator[None]:
        # Readers take the ledger's word when another process committed.
        with self._lock:
            self._index.sync()
            yield

    # -- devices -----------------------------------------------------------

    def update_devices(self, scan: ScanResult,
                       specs: devspec.DeviceSpecList) -> UpdateReport:
        """Take a (re)scan: add new devices, drop vanished free ones, keep
        and report vanished held ones."""
        with self._lock:
            before = self._inventory.scanned
            diff = self._inventory.replace(scan, specs)
            self._selector.forget_pools()
            self._holdings.recount()
            was_unhealthy = self._health.rescan(scan.devices)
            self._index.reindex()
            entries = self._inventory.entries
            vanished = _sorted(a for a in self._holdings.held
                               if a not in entries)
            for address in vanished:
                LOG.warning("Device %s held by instance %s is gone from "
                            "sysfs; kept until freed", address,
                            self._holdings.held[address].instance_uuid)
            return UpdateReport(
                added=_sorted(diff.added), removed=_sorted(diff.removed),
                changed=_sorted(diff.changed), vanished_in_use=vanished,
                **self._health.changes(before, self._inventory.scanned,
                                       was_unhealthy,
                                       self._holdings.held_vfs_of))

    def scanned_devices(self) -> tuple[PciDevice, ...]:
        """Every device of the last scan (one tuple per scan: a caller may
        cache what it derives from it by identity)."""
        with self._lock:
            return self._inventory.devices

    def device(self, address: str) -> PciDevice | None:
        """The assignable device at ``address`` in the last scan."""
        with self._lock:
            return self._inventory.device(address)

    def devices(self) -> dict[str, PciDevice]:
        """The assignable devices of the last scan, by address."""
        with self._lock:
            return {a: e.device
                    for a, e in self._inventory.entries.items()}

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state: available, claimed, plugged,
        or unavailable (its PF, or one of its VFs, is held); a held device
        gone from sysfs is listed as "vanished"."""
        with self._synced():
            return self._index.device_states()

    # -- claims ------------------------------------------------------------

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              state: PortState = PortState.CLAIMED,
              lease_started: LeaseStart | None = None,
              within: Sequence[Collection[str] | None] | None = None
              ) -> list[Allocation]:
        """One device per port, all or nothing, recorded before return.

        :param state: CLAIMED, or INCOMING for a live migration's
            destination, whose lease starts at ``lease_started``.
        :param within: per port, the only devices it may take (the VFs of
            the PF provider Placement allocated it on); None for a port
            Placement did not place.

        :raises ClaimFailed: naming the port, its flavor and why no device
            serves it; nothing changed.
        """
        return self._transitions.claim(instance_uuid, ports, numa_cells,
                                       state, lease_started, within)

    def _select(self, instance: str,
                wanted: Sequence[tuple[PortRequest, tuple[FlavorSpec, ...]]],
                cells: Collection[int] | None,
                within: Sequence[Collection[str] | None] | None = None
                ) -> list[str]:
        # The in-memory choice a claim makes, without the ledger (the
        # tracker benchmark times it alone).
        with self._lock:
            return self._selector.select(instance, wanted, cells, within)

    def allocate(self, instance_uuid: str) -> list[Allocation]:
        """Claimed -> plugged (the instance's networks exist)."""
        return self.transition(instance_uuid, PortState.PLUGGED)

    def transition(self, instance_uuid: str, state: PortState, *,
                   lease_started: LeaseStart | None = None
                   ) -> list[Allocation]:
        """Move every port of the instance to ``state``, all or nothing.

        Moving to INCOMING or OUTGOING starts the instance's migration
        lease at ``lease_started`` (unless one runs already); moving to
        PLUGGED ends it.

        :raises InvalidStateTransition: a port's current state may not
            change to ``state`` (see pci_passthrough.model.states), or the
            instance holds nothing; nothing changed.
        """
        return self._transitions.transition(instance_uuid, state,
                                            lease_started)

    def free(self, instance_uuid: str) -> list[Allocation]:
        """Free everything the instance holds; idempotent."""
        return self._transitions.free(instance_uuid)

    def free_port(self, instance_uuid: str, port_index: int
                  ) -> Allocation | None:
        """Free the device one port of the instance holds, all or
        nothing; the claim freed, None when the port held nothing.

        :raises InvalidStateTransition: the port's state may not be
            released; nothing changed.
        """
        return self._transitions.free_port(instance_uuid, port_index)

    def records(self) -> list[LedgerRecord]:
        """The ledger's records: who holds which device."""
        with self._synced():
            return list(self._holdings.held.values())

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        """What the instance (or every instance) holds, by port."""
        with self._synced():
            return self._holdings.allocations(instance_uuid)

    def port_requests(self, instance_uuid: str) -> dict[int, PortRequest]:
        """The request each held port of the instance was claimed with."""
        with self._synced():
            return self._holdings.port_requests(instance_uuid)

    def set_request(self, instance_uuid: str, request: PortRequest
                    ) -> Allocation:
        """Replace the request the port in ``request.index`` was claimed
        with, the device kept; the claim as it is now.

        :raises InvalidPortRequest: the port holds nothing; nothing
            changed.
        """
        return self._transitions.set_request(instance_uuid, request)

    def set_netdev(self, address: str, netdev: str) -> None:
        """Record the name udev gave the held device's netdev."""
        self._transitions.set_netdev(address, netdev)

    # -- VF journal and leases ---------------------------------------------

    def journal(self, address: str, text: str) -> bool:
        """Journal the device's netdev state unless a journal is kept
        already (the first one is the state before any plug); True when
        this call wrote it."""
        return self._transitions.journal(address, text)

    def forget_journal(self, address: str) -> None:
        """The device's netdev state was restored: it may be handed out
        again."""
        self._transitions.forget_journal(address)

    def journals(self) -> dict[str, NetdevState]:
        """Device address -> its netdev state journalled before a plug."""
        with self._lock:
            return self._ledger.journals()

    def leases(self) -> dict[str, LeaseStart]:
        """instance -> when its migration lease started."""
        with self._lock:
            return self._ledger.leases()

    # -- health, metrics and explain ----------------------------------------

    def unhealthy_pfs(self) -> dict[str, str]:
        """PF address -> why it cannot serve its VFs now (last scan)."""
        with self._lock:
            return dict(self._health.unhealthy)

    def pool_counts(self) -> list["PoolCounts"]:
        """The VF counts of every pool, for the metrics: labelled by the
        VFs' PF and the pool's tags (a PF matched by a device_spec as a
        whole device is not counted).  Held VFs are ``held``; free ones
        ``free``; the others whose PF is unhealthy ``unhealthy``."""
        with self._synced():
            return pool_counts(self._inventory, self._facts)

    def explain(self, flavor: str | PortRequest, count: int = 1,
                numa_cells: Collection[int] | None = None,
                needs_netdev: bool = True) -> Explanation:
        """For every device of the last scan: does it serve the flavor,
        and if not, the first reason."""
        if count < 1:
            raise exception.InvalidPortRequest(
                port="-", reason=f"count {count} must be at least 1")
        with self._synced():
            if isinstance(flavor, PortRequest):
                specs = self._selector.specs_of(flavor)
                label = flavor.label
            else:
                specs, label = self.flavors.get(flavor), flavor
            req = self._selector.request(specs, needs_netdev, numa_cells)
            return self._selector.explain(req, label, count)


def _sorted(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(addresses, key=address_sort_key))
