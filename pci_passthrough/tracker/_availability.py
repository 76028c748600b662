"""The availability index: in each pool, the members free now.

A member is free when the chain's ``state`` filter passes it
(:data:`pci_passthrough.tracker.filters.STATE_CHAIN`).  The index is
what lets a claim look at a handful of pools instead of every device;
it is brought up to date whenever a hold, a journal, a rescan or
another process's commit changes what the state filter reads.
"""

from collections.abc import Callable, Collection, Iterable

from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model.pci_address import address_sort_key
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker.filters import HostFacts, state_drop


class AvailabilityIndex:
    """Keeps each pool's ``free`` members in step with the holdings.

    :param inventory: the scanned devices and their pools.
    :param facts: the holdings and PF health the state filter reads.
    """

    def __init__(self, inventory: Inventory,
                 facts: HostFacts) -> None:
        self._inventory = inventory
        self._facts = facts

    def refresh(self, addresses: Iterable[str]) -> None:
        """Decide again whether each device is free in its pool."""
        entries = self._inventory.entries
        for address in addresses:
            entry = entries.get(address)
            if entry is None:
                continue
            if state_drop(entry.device, self._facts) is None:
                entry.pool.free[address] = None
            else:
                entry.pool.free.pop(address, None)

    def reindex(self) -> None:
        self.refresh(list(self._inventory.entries))

    def sync(self, records: Callable[[], list[LedgerRecord]] | None = None,
             journals: Callable[[], Collection[str]] | None = None
             ) -> None:
        """Take the ledger's word for who holds what, if another process
        committed since the last look (see Holdings.sync)."""
        if self._facts.holdings.sync(records, journals):
            self.reindex()

    def hold(self, rec: LedgerRecord) -> None:
        self._facts.holdings.hold(rec)
        self.refresh(self._inventory.affected(rec.address))

    def unhold(self, address: str) -> None:
        if self._facts.holdings.unhold(address):
            self.refresh(self._inventory.affected(address))

    def set_journalled(self, address: str, journalled: bool) -> None:
        """The device's netdev state was journalled, or restored."""
        if journalled:
            self._facts.holdings.journalled.add(address)
        else:
            self._facts.holdings.journalled.discard(address)
        self.refresh(self._inventory.affected(address))

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state: its holder's state,
        available, unhealthy or unavailable; a held device gone from
        sysfs is "vanished"."""
        entries = self._inventory.entries
        held = self._facts.holdings.held
        states = {}
        for address in sorted({*entries, *held}, key=address_sort_key):
            rec = held.get(address)
            if address not in entries:
                states[address] = "vanished"
            elif rec is not None:
                states[address] = rec.state
            else:
                dropped = state_drop(entries[address].device,
                                             self._facts)
                states[address] = (
                    "available" if dropped is None
                    else "unhealthy" if dropped[0].name == "unhealthy"
                    else "unavailable")
        return states
