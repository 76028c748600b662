"""Migration leases: an incoming migration not confirmed within option
incoming_migration_timeout is ended here (its networks deleted, its VFs
restored, its claims freed); an outgoing one that neither completes nor
aborts in time is only reported (doctor), since its guest may still run
here.

A lease is timed on the boot clock within the boot it started in, else
on the wall clock (see clock).  An incoming lease never ends while the
network driver says the instance's domain exists, nor when it cannot
tell: freeing VFs under a running guest costs more than holding them.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent.clock import (
    LeaseClock,
    ahead,
    elapsed,
    lease_start,
)
from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import DomainPresence
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

LOG = logging.getLogger(__name__)


class Leases:
    """Finds and ends the expired migration leases of one host.

    :param gate: each instance is ended under its lock.
    :param ledger: where a lease is restarted.
    :param release: deletes an instance's networks, restores its VFs
        and frees its claims (Ports.unplug).
    :param domains: whether an instance's domain exists on this host
        (NetworkDriver.domain_presence).
    :param timeout: option incoming_migration_timeout, in seconds.
    """

    def __init__(self, *, gate: OperationGate, tracker: HostTracker,
                 ledger: Ledger, release: Callable[[str], object],
                 domains: Callable[[str], DomainPresence],
                 metrics: "Metrics", clock: LeaseClock,
                 timeout: int) -> None:
        self._gate = gate
        self._tracker = tracker
        self._ledger = ledger
        self._release = release
        self._domains = domains
        self._metrics = metrics
        self._clock = clock
        self._timeout = timeout

    @property
    def timeout(self) -> int:
        """How long a lease lasts, in seconds."""
        return self._timeout

    def expired(self, state: PortState) -> list[str]:
        """Instances whose ports are all in ``state`` and whose lease
        started longer ago than the timeout; for INCOMING, only those
        whose domain the network driver says is gone."""
        ran_out = self._ran_out(state)
        if state is not PortState.INCOMING:
            return ran_out
        return [inst for inst in ran_out if self._domain_gone(inst)]

    def overdue(self) -> list[str]:
        """Incoming migrations whose lease ran out but is kept: their
        domain exists here, or the network driver cannot tell."""
        return [inst for inst in self._ran_out(PortState.INCOMING)
                if not self._domain_gone(inst)]

    def _ran_out(self, state: PortState) -> list[str]:
        by_instance: dict[str, set[str]] = {}
        for alloc in self._tracker.allocations():
            by_instance.setdefault(alloc.instance_uuid, set()).add(
                alloc.state)
        found = []
        for inst, started in sorted(self._tracker.leases().items()):
            ran = elapsed(started, self._clock)
            if by_instance.get(inst) == {state} and ran is not None and \
                    ran >= self._timeout:
                found.append(inst)
        return found

    def _domain_gone(self, instance: str) -> bool:
        try:
            presence = self._domains(instance)
        except Exception:
            # A driver plugin that fails to answer leaves it in doubt.
            LOG.exception("Cannot look up the domain of instance %s",
                          instance)
            presence = DomainPresence.UNKNOWN
        if presence is DomainPresence.ABSENT:
            return True
        LOG.info("The incoming migration lease of instance %s ran out, "
                 "but %s: its claims are kept", instance,
                 "its domain exists here"
                 if presence is DomainPresence.PRESENT else
                 f"the network driver cannot tell whether the domain of "
                 f"instance {instance} exists")
        return False

    def ahead(self) -> dict[str, float]:
        """Instances whose lease starts ahead of the wall clock: by how
        many seconds."""
        found = {}
        for inst, started in self._tracker.leases().items():
            seconds = ahead(started, self._clock)
            if seconds > 0:
                found[inst] = seconds
        return found

    def restart(self, instance: str) -> bool:
        """Restart the instance's lease now, if it (still) starts ahead
        of the wall clock; its claims and networks stay."""
        with self._gate.instance("doctor", instance), \
                self._ledger.transaction() as txn:
            started = txn.leases().get(instance)
            if started is None or \
                    ahead(started, self._clock) <= 0:
                return False
            return txn.restart_lease(
                instance, lease_start(self._clock))

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
        expired; False when it was confirmed or ended meanwhile, or its
        domain appeared."""
        with self._gate.instance("expire_leases", instance):
            if instance not in self._ran_out(PortState.INCOMING) or \
                    not self._domain_gone(instance):
                return False
            LOG.warning("Incoming migration of instance %s was not "
                        "confirmed within %d s and its domain is gone: "
                        "deleting its networks and freeing its claims "
                        "here", instance, self._timeout)
            self._release(instance)
            self._metrics.released()
            self._metrics.incoming_migration_ended("expired")
            return True
