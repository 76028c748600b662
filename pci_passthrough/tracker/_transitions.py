"""Every change of who holds what: claims, state transitions, frees, the
netdev names and VF journals of held devices.

Each change is all or nothing and recorded in the ledger before it
returns; memory changes only after the ledger committed, so a fault
mid-operation leaves both as they were.  Inside each write transaction
the holdings are reloaded first when another process committed since
(the ledger's UNIQUE address constraint is the last guard), and every
state change of a port is checked against the one table in
pci_passthrough.model.states.
"""

import dataclasses
import threading
from collections.abc import Collection, Sequence

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.ledger import LeaseStart, Ledger, LedgerRecord
from pci_passthrough.model.claims import Allocation, PortRequest
from pci_passthrough.model.instance_id import canonical_uuid
from pci_passthrough.model.netdev_name import is_valid_netdev_name
from pci_passthrough.model.states import PortState, check_transition
from pci_passthrough.tracker._availability import AvailabilityIndex
from pci_passthrough.tracker._holdings import Holdings
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker._selection import Selector

LOG = logging.getLogger(__name__)


class Transitions:
    """Changes the holdings through the ledger, under the tracker's lock.

    :param lock: the tracker's lock, held for every change.
    """

    def __init__(self, ledger: Ledger, lock: threading.RLock,
                 inventory: Inventory, holdings: Holdings,
                 index: AvailabilityIndex, selector: Selector) -> None:
        self._ledger = ledger
        self._lock = lock
        self._inventory = inventory
        self._holdings = holdings
        self._index = index
        self._selector = selector

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None, state: PortState,
              lease_started: LeaseStart | None,
              within: Sequence[Collection[str] | None] | None
              ) -> list[Allocation]:
        """See HostTracker.claim."""
        if within is not None and len(within) != len(ports):
            raise exception.InvalidPortRequest(
                port="-", reason=f"{len(within)} device sets for "
                                 f"{len(ports)} ports")
        instance = canonical_uuid(instance_uuid)
        if len({p.index for p in ports}) != len(ports):
            raise exception.InvalidPortRequest(
                port=",".join(str(p.index) for p in ports),
                reason="port indexes repeat")
        wanted = [(p, self._selector.specs_of(p)) for p in ports]
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                held = {r.port_index
                        for r in self._holdings.of_instance(instance)}
                for port in ports:
                    if port.index in held:
                        raise exception.InvalidPortRequest(
                            port=port.index,
                            reason=f"instance {instance} already holds a "
                                   f"device for this port")
                    check_transition(instance, port.index, PortState.NONE,
                                     state)
                picks = self._selector.select(instance, wanted, numa_cells,
                                              within)
                entries = self._inventory.entries
                records = [LedgerRecord(
                    instance_uuid=instance, port_index=port.index,
                    address=address, state=state, flavor=port.flavor,
                    request=port.to_json(),
                    netdev=_recordable(entries[address].device.netdev))
                    for port, address in zip(ports, picks, strict=True)]
                txn.add(records)
                if lease_started is not None:
                    txn.set_lease(instance, lease_started)
            # The ledger committed: memory follows, under the same lock
            # so that no other thread picks these devices meanwhile.
            for rec in records:
                self._index.hold(rec)
            LOG.info("Instance %s claimed %s", instance,
                     ", ".join(f"port {r.port_index}: {r.address}"
                               for r in records))
            return [self._holdings.allocation(r) for r in records]

    def transition(self, instance_uuid: str, state: PortState,
                   lease_started: LeaseStart | None) -> list[Allocation]:
        """See HostTracker.transition."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                mine = self._holdings.of_instance(instance)
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
                self._holdings.held[rec.address] = dataclasses.replace(
                    rec, state=state)
            return self._holdings.allocations(instance)

    def free(self, instance_uuid: str) -> list[Allocation]:
        """See HostTracker.free."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                for rec in self._holdings.of_instance(instance):
                    check_transition(instance, rec.port_index,
                                     rec.state, PortState.RELEASED)
                gone = txn.remove_instance(instance)
            freed = [self._holdings.allocation(r) for r in gone]
            for rec in gone:
                self._index.unhold(rec.address)
            if gone:
                LOG.info("Instance %s freed %s", instance,
                         ", ".join(r.address for r in gone))
            return freed

    def free_port(self, instance_uuid: str, port_index: int
                  ) -> Allocation | None:
        """See HostTracker.free_port."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                mine = self._holdings.of_instance(instance)
                gone = [r for r in mine if r.port_index == port_index]
                if not gone:
                    return None
                check_transition(instance, port_index, gone[0].state,
                                 PortState.RELEASED)
                txn.remove_port(instance, port_index)
            self._index.unhold(gone[0].address)
            LOG.info("Instance %s port %s freed %s", instance, port_index,
                     gone[0].address)
            return self._holdings.allocation(gone[0])

    def set_request(self, instance_uuid: str, request: PortRequest
                    ) -> Allocation:
        """See HostTracker.set_request."""
        instance = canonical_uuid(instance_uuid)
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                mine = [r for r in self._holdings.of_instance(instance)
                        if r.port_index == request.index]
                if not mine:
                    raise exception.InvalidPortRequest(
                        port=request.name,
                        reason=f"instance {instance} holds no claim for "
                               f"it here")
                (rec,) = mine
                text = request.to_json()
                txn.set_request(instance, request.index, text)
            rec = dataclasses.replace(rec, request=text)
            self._holdings.held[rec.address] = rec
            return self._holdings.allocation(rec)

    def set_netdev(self, address: str, netdev: str) -> None:
        """See HostTracker.set_netdev."""
        with self._lock:
            with self._ledger.transaction() as txn:
                self._index.sync(txn.records, txn.journals)
                txn.set_netdev(address, _recordable(netdev))
            rec = self._holdings.held.get(address)
            if rec is not None:
                self._holdings.held[address] = dataclasses.replace(
                    rec, netdev=_recordable(netdev))

    def journal(self, address: str, text: str) -> bool:
        """See HostTracker.journal."""
        with self._lock, self._ledger.transaction() as txn:
            if address in txn.journals():
                return False
            txn.journal(address, text)
            self._index.set_journalled(address, True)
            return True

    def forget_journal(self, address: str) -> None:
        """See HostTracker.forget_journal."""
        with self._lock:
            with self._ledger.transaction() as txn:
                txn.forget_journal(address)
            self._index.set_journalled(address, False)


def _recordable(netdev: str | None) -> str | None:
    """``netdev``, or None when the ledger would refuse it: a name read
    from sysfs that the kernel would not accept is not recorded."""
    return netdev if is_valid_netdev_name(netdev) else None
