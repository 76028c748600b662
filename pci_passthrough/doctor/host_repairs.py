"""doctor --fix on one host: each finding of the host checks repaired
on its own, or left saying why.  Each repair looks again first, since
the host may have moved on since the checks (a port claimed, a journal
restored, a lease confirmed), and a VF's netdev is read from sysfs
by its PCI address when a repair uses it.

A network found holding another VF's netdev, on which a guest sits,
is rewritten for its own VF; that other VF is first held back from
claims (its netdev state journalled, as before a plug) until nothing
sits on it, and the finding is left saying the guest must be
replugged."""

import dataclasses
from typing import TYPE_CHECKING

from pci_passthrough import exception
from pci_passthrough.discovery.netdev_lookup import live_netdev
from pci_passthrough.doctor.host_checks import upper_devices, vf_holding
from pci_passthrough.doctor.host_parts import (
    InstanceLocks,
    Journals,
    Leases,
    Networks,
)
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.access import NetdevAccess
from pci_passthrough.model.claims import Allocation
from pci_passthrough.model.states import NETWORKED
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.names import parse_network_name

if TYPE_CHECKING:
    from pci_passthrough.tracker import HostTracker


class HostRepairs:
    """Repairs the host checks' findings.

    :param locks: a network's repair runs under its instance's lock.
    :param sysfs_root: where a VF's netdev, and what sits on it, is read
        when a repair uses it; None: the names of the last scan, and no
        VF is held back.
    :param netdevs: how the netdev state of a VF held back is read.
    """

    def __init__(self, *, tracker: "HostTracker", networks: Networks,
                 leases: Leases, journals: Journals,
                 locks: InstanceLocks, sysfs_root: str | None = None,
                 netdevs: NetdevAccess | None = None) -> None:
        self._tracker = tracker
        self._networks = networks
        self._leases = leases
        self._journals = journals
        self._locks = locks
        self._sysfs_root = sysfs_root
        self._netdevs = netdevs

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
            uppers = self._uppers(subject, journal.netdev)
            if uppers:
                return (f"upper device(s) {', '.join(uppers)} sit on its "
                        f"netdev meanwhile")
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
            netdev, why = self._netdev(alloc)
            if netdev is None:
                return why
            spec = self._networks.spec(
                dataclasses.replace(alloc, netdev=netdev))
            left = None
            if kind is FindingKind.DRIFTED_NETWORK:
                refused, left = self._hold_back(alloc, spec)
                if refused is not None:
                    return refused
            self._networks.ensure(instance, port, spec)
            return left

    # -- a VF's netdev, now -------------------------------------------------

    def _netdev(self, alloc: Allocation) -> tuple[str | None, str]:
        """The claimed VF's netdev now, or why there is none."""
        if self._sysfs_root is None or alloc.vanished:
            return alloc.netdev, f"device {alloc.address} has no netdev"
        live = live_netdev(self._sysfs_root, alloc.address)
        return live.netdev, (f"the netdev of VF {alloc.address} cannot be "
                             f"resolved: {live.problem}; the network is "
                             f"left as it is")

    def _uppers(self, address: str, recorded: str) -> list[str]:
        if self._sysfs_root is None:
            return []
        netdev = live_netdev(self._sysfs_root, address).netdev or recorded
        return upper_devices(self._sysfs_root, netdev)

    def _hold_back(self, alloc: Allocation, spec: NetworkSpec
                   ) -> tuple[str | None, str | None]:
        """Before a network is rewritten: when it holds another VF's
        netdev and something sits on it, keep that VF from being claimed.
        (Why the rewrite is refused, or None; what is left to do, or
        None.)"""
        if self._sysfs_root is None:
            return None, None
        found = self._networks.driver.list_networks(spec.name).get(
            spec.name)
        if found is None or found.netdev in ("", spec.netdev):
            return None, None
        other = vf_holding(self._sysfs_root, self._tracker.devices(),
                           found.netdev)
        uppers = upper_devices(self._sysfs_root, found.netdev)
        if other is None or not uppers:
            return None, None
        refused = self._journal(other, found.netdev)
        if refused is not None:
            return (f"cannot hold VF {other} back, on whose netdev "
                    f"{found.netdev} the guest sits ({refused}); the "
                    f"network is left holding {found.netdev}: move the "
                    f"guest first"), None
        return None, (
            f"rewritten to hold {spec.netdev}, but upper device(s) "
            f"{', '.join(uppers)} sit on {found.netdev}, the netdev of VF "
            f"{other}, which is held back from claims until nothing does: "
            f"replug the guest of instance {alloc.instance_uuid} port "
            f"{alloc.port_index} (detach and attach its interface, or "
            f"hard-reboot or migrate the instance) to move it to "
            f"{alloc.address}")

    def _journal(self, address: str, netdev: str) -> str | None:
        """Journal the VF's netdev state, which keeps it from being
        claimed until it is restored; None, or why not."""
        if address in {a.address for a in self._tracker.allocations()} or \
                address in self._tracker.journals():
            return None  # not handed out already
        if self._netdevs is None or not self._netdevs.touches_netdevs:
            return "this agent reads no netdev state"
        dev = self._tracker.device(address)
        vf = None
        if dev is not None and dev.pf_netdev and dev.vf_index is not None:
            vf = (dev.pf_netdev, dev.vf_index)
        try:
            state = self._netdevs.read(netdev, vf)
        except exception.PciPassthroughError as exc:
            return str(exc)
        if state is None:
            return f"netdev {netdev} cannot be found"
        self._tracker.journal(address, netdev_journal.to_json(state))
        return None
