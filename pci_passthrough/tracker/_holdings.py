"""Who holds which device: the ledger's claims and VF journals, mirrored
in memory.

Several processes may share one ledger (the agent and the CLI): the
mirror is reloaded whenever another connection has committed since it
last looked.
"""

from collections.abc import Callable, Collection, Sequence

from pci_passthrough.ledger import Ledger, LedgerRecord
from pci_passthrough.model.claims import Allocation, PortRequest
from pci_passthrough.tracker._inventory import Inventory


class Holdings:
    """The held devices and the journalled ones of one ledger.

    :param ledger: the ledger mirrored.
    :param inventory: the scanned devices, for the held VFs' PFs.
    """

    def __init__(self, ledger: Ledger, inventory: Inventory) -> None:
        self._ledger = ledger
        self._inventory = inventory
        #: Address -> the record of its holder.
        self.held: dict[str, LedgerRecord] = {}
        #: PF address -> how many of its VFs are held.
        self.held_vfs_of: dict[str, int] = {}
        #: Devices whose netdev state, journalled before a plug, is not
        #: restored yet: never handed out until it is.
        self.journalled: set[str] = set(ledger.journals())
        self.load(ledger.records())
        self._version: int | None = ledger.data_version()

    def load(self, records: Sequence[LedgerRecord]) -> None:
        """Hold exactly ``records``."""
        self.held.clear()
        self.held_vfs_of.clear()
        for rec in records:
            self.hold(rec)

    def recount(self) -> None:
        """Count the held VFs of each PF again: a rescan may have changed
        the VFs' PFs (they are unknown before the first scan)."""
        self.load(list(self.held.values()))

    def sync(self, records: Callable[[], list[LedgerRecord]] | None = None,
             journals: Callable[[], Collection[str]] | None = None
             ) -> bool:
        """Reload from the ledger (or from the open transaction's
        ``records`` and ``journals``) if another connection committed
        since the last look; True when it did."""
        version = self._ledger.data_version()
        if version == self._version:
            return False
        self.journalled = set((journals or self._ledger.journals)())
        self.load((records or self._ledger.records)())
        self._version = version
        return True

    def hold(self, rec: LedgerRecord) -> None:
        self.held[rec.address] = rec
        parent = self._inventory.parent(rec.address)
        if parent:
            self.held_vfs_of[parent] = self.held_vfs_of.get(parent, 0) + 1

    def unhold(self, address: str) -> bool:
        """False when ``address`` was not held."""
        if self.held.pop(address, None) is None:
            return False
        parent = self._inventory.parent(address)
        if parent:
            self.held_vfs_of[parent] -= 1
            if not self.held_vfs_of[parent]:
                del self.held_vfs_of[parent]
        return True

    def of_instance(self, instance_uuid: str) -> list[LedgerRecord]:
        return [r for r in self.held.values()
                if r.instance_uuid == instance_uuid]

    def allocation(self, rec: LedgerRecord) -> Allocation:
        """The record as callers see it, with what sysfs says now."""
        dev = self._inventory.device(rec.address)
        port = PortRequest.from_json(rec.port_index, rec.request)
        return Allocation(
            instance_uuid=rec.instance_uuid, port_index=rec.port_index,
            address=rec.address,
            # sysfs is right about the name: udev may have renamed it.
            netdev=dev.netdev if dev else rec.netdev,
            flavor=rec.flavor, state=rec.state, mac=port.mac,
            vlan=port.vlan, parent_addr=dev.parent_addr if dev else None,
            vanished=dev is None, port_id=port.port_id)

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        recs = [r for r in self.held.values()
                if instance_uuid is None or r.instance_uuid == instance_uuid]
        recs.sort(key=lambda r: (r.instance_uuid, r.port_index))
        return [self.allocation(r) for r in recs]

    def port_requests(self, instance_uuid: str) -> dict[int, PortRequest]:
        """The request each held port of the instance was claimed with."""
        return {r.port_index: PortRequest.from_json(r.port_index, r.request)
                for r in self.of_instance(instance_uuid)}
