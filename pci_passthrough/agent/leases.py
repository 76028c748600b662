"""Migration leases: an incoming migration not confirmed within option
incoming_migration_timeout is ended here (its networks deleted, its VFs
restored, its claims freed); an outgoing one that neither completes nor
aborts in time is only reported (doctor), since its guest may still run
here."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.model.states import PortState
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

LOG = logging.getLogger(__name__)


class Leases:
    """Finds and ends the expired migration leases of one host.

    :param gate: each instance is ended under its lock.
    :param release: deletes an instance's networks, restores its VFs
        and frees its claims (Ports.unplug).
    :param clock: seconds since the epoch.
    :param timeout: option incoming_migration_timeout, in seconds.
    """

    def __init__(self, *, gate: OperationGate, tracker: HostTracker,
                 release: Callable[[str], object], metrics: "Metrics",
                 clock: Callable[[], float], timeout: int) -> None:
        self._gate = gate
        self._tracker = tracker
        self._release = release
        self._metrics = metrics
        self._clock = clock
        self._timeout = timeout

    @property
    def timeout(self) -> int:
        """How long a lease lasts, in seconds."""
        return self._timeout

    def expired(self, state: PortState) -> list[str]:
        """Instances whose ports are all in ``state`` and whose lease
        started longer ago than the timeout."""
        now = self._clock()
        leases = self._tracker.leases()
        by_instance: dict[str, set[str]] = {}
        for alloc in self._tracker.allocations():
            by_instance.setdefault(alloc.instance_uuid, set()).add(
                alloc.state)
        return [inst for inst, started in sorted(leases.items())
                if by_instance.get(inst) == {state}
                and now - started >= self._timeout]

    def expire_all(self) -> list[str]:
        """Release every instance whose incoming migration lease
        expired; the instances released.  One whose release fails keeps
        its claims, leased, for the next call to retry."""
        with self._gate.open("expire_leases"):
            expired = []
            for inst in self.expired(PortState.INCOMING):
                try:
                    if self.expire(inst):
                        expired.append(inst)
                except exception.PciPassthroughError:
                    LOG.exception("Cannot end the expired incoming "
                                  "migration of instance %s", inst)
            return expired

    def expire(self, instance: str) -> bool:
        """Release the instance if its incoming lease is (still)
        expired; False when it was confirmed or ended meanwhile."""
        with self._gate.instance("expire_leases", instance):
            if instance not in self.expired(PortState.INCOMING):
                return False
            LOG.warning("Incoming migration of instance %s was not "
                        "confirmed within %d s: deleting its networks and "
                        "freeing its claims here", instance, self._timeout)
            self._release(instance)
            self._metrics.released()
            self._metrics.incoming_migration_ended("expired")
            return True
