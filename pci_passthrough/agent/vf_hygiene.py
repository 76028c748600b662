"""VF hygiene: a VF netdev's state is journalled before its first plug
and restored once its network is gone, so that the next instance gets
the VF as it was; one that cannot be restored is not handed out again
until it is (doctor --fix retries)."""

from collections.abc import Iterable

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.access import NetdevAccess
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.model.claims import Allocation
from pci_passthrough.tracker import HostTracker

LOG = logging.getLogger(__name__)


class VfHygiene:
    """Journals and restores the VF netdevs of one host.

    :param tracker: keeps the journals in its ledger.
    :param netdevs: how netdev states are read and written back.
    """

    def __init__(self, tracker: HostTracker, netdevs: NetdevAccess) -> None:
        self._tracker = tracker
        self._netdevs = netdevs

    @property
    def access(self) -> NetdevAccess:
        return self._netdevs

    def journals(self) -> dict[str, NetdevState]:
        """The states journalled and not restored yet, by device
        address."""
        return self._tracker.journals()

    def journal(self, alloc: Allocation) -> None:
        """Journal the VF netdev's state before its first plug; a netdev
        that cannot be read is plugged all the same, without journal."""
        if not alloc.netdev or not self._netdevs.touches_netdevs:
            return
        dev = self._tracker.device(alloc.address)
        vf = None
        if dev is not None and dev.pf_netdev and dev.vf_index is not None:
            vf = (dev.pf_netdev, dev.vf_index)
        try:
            state = self._netdevs.read(alloc.netdev, vf)
        except exception.PciPassthroughError as exc:
            LOG.warning("Cannot read the state of netdev %s of device %s "
                        "before plugging it (%s); it is not journalled and "
                        "will not be restored", alloc.netdev, alloc.address,
                        exc)
            return
        if state is None:
            LOG.warning("Netdev %s of device %s does not exist here; its "
                        "state is not journalled", alloc.netdev,
                        alloc.address)
            return
        if self._tracker.journal(alloc.address,
                                 netdev_journal.to_json(state)):
            LOG.info("Journalled netdev %s of device %s: %s", alloc.netdev,
                     alloc.address, netdev_journal.to_json(state))

    def restore_held(self, allocs: Iterable[Allocation]) -> None:
        """Restore the journalled VFs among ``allocs``, whose networks
        are gone.  One that cannot be restored keeps its journal, which
        keeps it from being handed out."""
        journals = self._tracker.journals()
        for alloc in allocs:
            if alloc.address in journals:
                self.restore(alloc.address, journals[alloc.address])

    def restore(self, address: str, journal: NetdevState) -> str | None:
        """Restore the journalled state, then forget the journal; None,
        or why it could not."""
        try:
            steps = self._netdevs.restore(journal)
        except exception.PciPassthroughError as exc:
            LOG.warning("Cannot restore netdev %s of device %s (%s); the "
                        "device is not handed out until doctor --fix "
                        "restores it", journal.netdev, address, exc)
            return str(exc)
        self._tracker.forget_journal(address)
        LOG.info("Restored netdev %s of device %s%s", journal.netdev,
                 address, ": " + "; ".join(map(str, steps)) if steps
                 else " (unchanged)")
        return None
