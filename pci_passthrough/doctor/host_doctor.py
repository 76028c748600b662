"""doctor for one host: the host checks (ledger against sysfs, libvirt's
networks and the VF netdevs), Placement's audit when a client is given,
and with fix, their repairs; counted in the metrics and logged."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_log import log as logging

from pci_passthrough.doctor import host_checks
from pci_passthrough.doctor.host_parts import Leases, Networks, Placement
from pci_passthrough.doctor.host_repairs import HostRepairs
from pci_passthrough.doctor.lease_clock_checks import (
    lease_clock_findings,
    lease_overdue_findings,
)
from pci_passthrough.doctor.report import (
    PLACEMENT_KINDS,
    DoctorReport,
    Finding,
)
from pci_passthrough.hygiene.access import NetdevAccess
from pci_passthrough.model.states import PortState

if TYPE_CHECKING:
    from pci_passthrough.ledger import Ledger
    from pci_passthrough.metrics import Metrics
    from pci_passthrough.placement.client import PlacementClient
    from pci_passthrough.tracker import HostTracker

LOG = logging.getLogger(__name__)


class HostDoctor:
    """Finds what is wrong on one host and repairs what is safe.

    :param sysfs_root: where the checks read upper devices.
    :param netdevs: how the checks read the VF netdevs.
    :param rescan: scans sysfs into the tracker before the checks.
    :param repairs: the host findings' repairs.
    :param placement: the host as reported to Placement, audited when
        run() gets a client.
    """

    def __init__(self, *, sysfs_root: str, tracker: "HostTracker",
                 ledger: "Ledger", networks: Networks,
                 netdevs: NetdevAccess, leases: Leases,
                 rescan: Callable[[], object], repairs: HostRepairs,
                 placement: Placement, metrics: "Metrics") -> None:
        self._sysfs_root = sysfs_root
        self._tracker = tracker
        self._ledger = ledger
        self._networks = networks
        self._netdevs = netdevs
        self._leases = leases
        self._rescan = rescan
        self._repairs = repairs
        self._placement = placement
        self._metrics = metrics

    def run(self, fix: bool = False,
            placement: "PlacementClient | None" = None) -> DoctorReport:
        """What HostAgent.doctor() does."""
        self._rescan()
        findings = self.examine()
        if placement is not None:
            findings += self.placement_findings(placement)
        if fix:
            findings = self.repair_all(findings, placement)
        self._metrics.doctor_ran(
            f.kind.label for f in findings if not f.fixed)
        for finding in findings:
            if finding.fixed:
                self._metrics.doctor_repair(finding.kind.label)
                LOG.info("Doctor fixed %s: %s (%s)", finding.subject,
                         finding.problem, finding.repair)
            elif fix:
                LOG.warning("Doctor left %s: %s; %s", finding.subject,
                            finding.problem, finding.left)
            else:
                LOG.info("Doctor found %s: %s; repair: %s",
                         finding.subject, finding.problem, finding.repair)
        return DoctorReport(findings=tuple(findings), fix=fix)

    def examine(self) -> list[Finding]:
        """The host checks' findings, now."""
        prefix = self._networks.prefix
        driver = self._networks.driver
        leases = (lease_clock_findings(self._leases)
                  + lease_overdue_findings(self._leases))
        return leases + host_checks.examine(host_checks.HostState(
            prefix=prefix, sysfs_root=self._sysfs_root,
            allocations=tuple(self._tracker.allocations()),
            expired_incoming=tuple(self._leases.expired(PortState.INCOMING)),
            expired_outgoing=tuple(self._leases.expired(PortState.OUTGOING)),
            lease_timeout=self._leases.timeout,
            networks=driver.network_status(prefix),
            forward_mode=driver.forward_mode(),
            recorded_netdevs={r.address: r.netdev
                              for r in self._ledger.records()},
            devices=self._tracker.devices(),
            scanned=tuple(self._tracker.scanned_devices()),
            journals=self._tracker.journals(),
            unhealthy_pfs=self._tracker.unhealthy_pfs()),
            self._networks.spec, self._netdevs)

    def placement_findings(self, client: "PlacementClient"
                           ) -> list[Finding]:
        """Placement's audit of this host's providers and the units of
        its instances (GETs only)."""
        from pci_passthrough.doctor.placement_audit import audit, observe

        nodename = self._placement.default_nodename()
        records = self._tracker.records()
        tree = self._placement.tree(nodename)
        observed = observe(client, nodename,
                           {r.instance_uuid for r in records},
                           names=[p.name for p in tree.providers])
        return audit(tree, records, observed)

    def repair_all(self, findings: list[Finding],
                   client: "PlacementClient | None") -> list[Finding]:
        """The host's repairs one by one, then Placement's in one sync
        from the ledger as those left it."""
        from pci_passthrough.doctor import placement_repair

        local = [self._repairs.repair(f) for f in findings
                 if f.kind not in PLACEMENT_KINDS]
        remote = [f for f in findings if f.kind in PLACEMENT_KINDS]
        if client is None:
            return local + remote
        nodename = self._placement.default_nodename()
        done = placement_repair.repair(
            client, self._placement.tree(nodename),
            self._tracker.records(), remote,
            traits=self._placement.flavor_traits(),
            classes=self._placement.flavor_classes(),
            ledger=self._tracker.records)
        if done.provider_uuids is not None:
            self._placement.remember_providers(nodename,
                                               done.provider_uuids)
        return local + list(done.findings)
