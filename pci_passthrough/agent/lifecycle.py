"""The agent's life on one host: start (scan, end expired leases,
reconcile libvirt's networks with the ledger), periodic refresh, close."""

import dataclasses
from typing import TYPE_CHECKING

from oslo_log import log as logging

from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.agent.leases import Leases
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.scan import HostScan
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import Allocation, UpdateReport
from pci_passthrough.model.states import NETWORKED, Repair
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.names import parse_network_name
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ReconcileAction:
    """One repair start() made, for its report."""

    action: Repair
    network: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class StartReport:
    devices: int
    allocations: int
    scan_errors: tuple[str, ...]
    actions: tuple[ReconcileAction, ...]
    #: Instances whose incoming migration lease expired (while the host
    #: was down, say) and which start() released.
    expired_leases: tuple[str, ...] = ()


class Lifecycle:
    """Starts, refreshes and closes one host's agent.

    :param gate: closed first, so close() waits for the operations in
        progress.
    :param ledger: closed last.
    """

    def __init__(self, *, gate: OperationGate, scan: HostScan,
                 tracker: HostTracker, networks: HostNetworks,
                 leases: Leases, metrics: "Metrics",
                 ledger: Ledger) -> None:
        self._gate = gate
        self._scan = scan
        self._tracker = tracker
        self._networks = networks
        self._leases = leases
        self._metrics = metrics
        self._ledger = ledger

    def start(self) -> StartReport:
        """What HostAgent.start() does."""
        scan, _ = self._scan.scan()
        # Expired leases before reconcile: it would otherwise restore
        # networks their release deletes next, or fail on a VF the
        # downtime took away.  A release that fails keeps the claims
        # leased, and reconcile keeps their networks in step.
        expired = self._leases.expire_all()
        actions = self.reconcile()
        for act in actions:
            self._metrics.reconcile_action(act.action)
            LOG.info("Reconcile: %s network %s (%s)", act.action,
                     act.network, act.reason)
        return StartReport(
            devices=len(scan.devices),
            allocations=len(self._tracker.allocations()),
            scan_errors=tuple(f"{e.path}: {e.reason}" for e in scan.errors),
            actions=tuple(actions),
            expired_leases=tuple(expired),
        )

    def refresh(self) -> UpdateReport:
        """Rescan, then end the expired incoming leases."""
        report = self._scan.refresh()
        expired = self._leases.expire_all()
        return dataclasses.replace(report, expired_leases=tuple(expired))

    def close(self) -> None:
        """Wait for the operations in progress, then close the driver and
        the ledger; nothing when closed already."""
        if not self._gate.close():
            return
        try:
            self._networks.driver.close()
        finally:
            self._ledger.close()

    def reconcile(self) -> list[ReconcileAction]:
        """Make libvirt's networks of ours what the ledger says: delete
        those whose port holds no claim, restore missing ones, rewrite
        those holding another device.  A network whose whole name does
        not parse as ours is never touched."""
        prefix = self._networks.prefix
        actions: list[ReconcileAction] = []
        present = self._networks.driver.list_networks(prefix)
        expected: dict[str, tuple[Allocation, NetworkSpec]] = {}
        held = set()
        for alloc in self._tracker.allocations():
            held.add((alloc.instance_uuid, alloc.port_index))
            if alloc.state in NETWORKED and alloc.netdev:
                spec = self._networks.spec(alloc)
                expected[spec.name] = (alloc, spec)
        for name in sorted(present):
            parsed = parse_network_name(prefix, name)
            # Only a name that parses whole as ours is ours: a prefix
            # such as "d" must not make libvirt's "default" an orphan.
            if parsed is None or parsed in held:
                continue
            self._networks.delete(parsed[0], parsed[1], name)
            actions.append(ReconcileAction(
                Repair.DELETED, name, "no claim here holds its port"))
        for name, (alloc, spec) in sorted(expected.items()):
            have = present.get(name)
            if have == spec:
                continue
            self._networks.ensure(alloc.instance_uuid, alloc.port_index,
                                  spec)
            if have is None:
                actions.append(ReconcileAction(
                    Repair.RESTORED, name,
                    f"port {alloc.port_index} holds {alloc.address}"))
            else:
                actions.append(ReconcileAction(
                    Repair.REWRITTEN, name,
                    f"held {have.netdev}, the ledger says {spec.netdev}"))
        return actions
