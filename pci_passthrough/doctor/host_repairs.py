"""doctor --fix on one host: each finding of the host checks repaired
on its own, or left saying why.  Each repair looks again first, since
the host may have moved on since the checks (a port claimed, a journal
restored, a lease confirmed)."""

import dataclasses
from typing import TYPE_CHECKING

from pci_passthrough import exception
from pci_passthrough.doctor.host_parts import (
    InstanceLocks,
    Journals,
    Leases,
    Networks,
)
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.model.states import NETWORKED
from pci_passthrough.network.names import parse_network_name

if TYPE_CHECKING:
    from pci_passthrough.tracker import HostTracker


class HostRepairs:
    """Repairs the host checks' findings.

    :param locks: a network's repair runs under its instance's lock.
    """

    def __init__(self, *, tracker: "HostTracker", networks: Networks,
                 leases: Leases, journals: Journals,
                 locks: InstanceLocks) -> None:
        self._tracker = tracker
        self._networks = networks
        self._leases = leases
        self._journals = journals
        self._locks = locks

    def repair(self, finding: Finding) -> Finding:
        """The finding, fixed or left with why."""
        if not finding.fixable:
            return finding.unsafe()
        try:
            why = self.apply(finding)
        except exception.PciPassthroughError as exc:
            why = str(exc)
        if why is None:
            return dataclasses.replace(finding, fixed=True)
        return dataclasses.replace(finding, left=why)

    def apply(self, finding: Finding) -> str | None:
        """Carry out one repair; None, or why it was not made."""
        kind, subject = finding.kind, finding.subject.split(" ", 1)[1]
        if kind is FindingKind.LEASE_EXPIRED:
            return None if self._leases.expire(subject) else \
                "confirmed or released meanwhile"
        if kind is FindingKind.LEASE_AHEAD:
            return None if self._leases.restart(subject) else \
                "ended or restarted meanwhile"
        if kind is FindingKind.VF_NOT_RESTORED:
            journal = self._tracker.journals().get(subject)
            if journal is None:
                return None  # restored meanwhile
            if subject in {a.address for a in self._tracker.allocations()}:
                return "claimed meanwhile"
            return self._journals.restore(subject, journal)
        if kind is FindingKind.NETDEV_CHANGED:
            dev = self._tracker.device(subject)
            if dev is None or not dev.netdev:
                return "the device or its netdev is gone meanwhile"
            self._tracker.set_netdev(subject, dev.netdev)
            return None
        return self._repair_network(kind, subject)

    def _repair_network(self, kind: FindingKind, name: str) -> str | None:
        parsed = parse_network_name(self._networks.prefix, name)
        if parsed is None:
            raise AssertionError(f"{kind} names network {name}, not ours")
        instance, port = parsed
        with self._locks.instance("doctor", instance):
            allocs = {a.port_index: a
                      for a in self._tracker.allocations(instance)}
            if kind is FindingKind.ORPHAN_NETWORK:
                if port in allocs:
                    return "its port was claimed meanwhile"
                self._networks.delete(instance, port, name)
                return None
            alloc = allocs.get(port)
            if alloc is None or alloc.state not in NETWORKED:
                return "its port was released meanwhile"
            self._networks.ensure(instance, port,
                                  self._networks.spec(alloc))
            return None
