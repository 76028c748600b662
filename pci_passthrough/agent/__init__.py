"""The host-level API a nova-compute fork calls.

HostAgent ties the scanner, the device tracker with its ledger, and the
network driver together.  It is the one path by which claims change
(the CLI's claim and free use it too), so that claims and networks move
together.  Each method is idempotent: calling it again after success, or
after a crash part-way, converges to the same state.  A failure part-way
through several ports undoes what the call did.

A live migration's claims are leased on both hosts (incoming, outgoing)
until confirmed; a VF's netdev state is journalled before its plug and
restored after; doctor() compares all of it with the host and repairs
what is safe.
"""

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.config.settings import load_settings
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.doctor import host_checks as doctor_checks
from pci_passthrough.doctor.report import (
    PLACEMENT_KINDS,
    DoctorReport,
    Finding,
    FindingKind,
)
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.access import (
    NetdevAccess,
    NoNetdevAccess,
    netlink_access,
)
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import (
    Allocation,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.model.instance_id import canonical_uuid
from pci_passthrough.model.states import NETWORKED, PortState, Repair
from pci_passthrough.network import load_network_driver
from pci_passthrough.network.base import (
    NetworkDriver,
    NetworkSpec,
)
from pci_passthrough.network.names import network_name, parse_network_name
from pci_passthrough.placement import allocation as placement_allocation
from pci_passthrough.placement import conf as placement_conf
from pci_passthrough.placement import provider_tree as placement_provider_tree
from pci_passthrough.placement import requests as placement_requests
from pci_passthrough.placement.tree import ProviderTree, build_tree
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    # prometheus-client costs 50 ms to import: loaded with the first
    # agent, not with the commands that import this module.
    from pci_passthrough.metrics import Metrics
    from pci_passthrough.placement.client import PlacementClient

LOG = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
# The fields of a port request a repeated claim must repeat as they are.
_REQUEST_FIELDS = ("flavor", "spec", "mac", "vlan", "needs_netdev")


@dataclasses.dataclass(frozen=True, slots=True)
class PluggedPort:
    """One guest port whose network is defined and active on this host."""

    index: int
    network: str
    address: str
    netdev: str
    mac: str | None
    interface_xml: str


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


class HostAgent:
    """SR-IOV macvtap passthrough for the instances of one compute host.

    :param conf: a ConfigOpts on which
        :func:`pci_passthrough.config.opts.register_opts` was called
        and which has been parsed.
    :param network_driver: a driver instance to use instead of the one the
        option ``network_driver`` names (tests and embedding services).
    :param netdev_access: how VF netdev states are read and restored
        (VF hygiene).  Default: netlink when ``sysfs_root`` is the
        host's own /sys, writing as the option ``netdev_writes`` says
        (directly or through privsep); nothing at all (NoNetdevAccess)
        when it points elsewhere, since a relocated sysfs tree (tests,
        demos) names netdevs that are not this host's.
    :param clock: seconds since the epoch (time.time); tests pass a
        clock they control, for migration leases.
    :param readonly: open the ledger read-only (see Ledger): for
        commands that only look, such as ``doctor`` without fix; every
        call that would change a claim raises LedgerError.
    :param metrics: where claims, plugs, releases and repairs are
        counted; by default a Metrics of its own.  Either way it reads
        its pool gauges from this agent (unless given a pool source
        already); ``agent.metrics`` is what a service registers in its
        prometheus-client registry.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 network_driver: NetworkDriver | None = None, *,
                 netdev_access: NetdevAccess | None = None,
                 clock: Callable[[], float] = time.time,
                 readonly: bool = False,
                 metrics: "Metrics | None" = None) -> None:
        # The whole configuration is validated here, before anything on the
        # host is touched: no partial configuration is ever used.
        settings = load_settings(conf)
        self._conf = conf
        self._sysfs_root: str = settings.sysfs_root
        self._prefix: str = settings.network_name_prefix
        self._specs = settings.device_specs
        self._flavors = settings.flavors
        self._lease_timeout = settings.incoming_migration_timeout
        self._clock = clock
        if netdev_access is None:
            real = os.path.realpath(self._sysfs_root) == "/sys"
            netdev_access = (netlink_access(settings.netdev_writes)
                             if real else NoNetdevAccess())
        self._netdevs = netdev_access
        self._driver = network_driver or load_network_driver(conf)
        self._ledger = Ledger(settings.state_path, readonly=readonly)
        self._tracker = HostTracker(self._flavors, self._ledger)
        self.metrics = self._metrics(metrics)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._instance_locks: dict[str, _InstanceLock] = {}
        self._active = 0
        self._closed = False
        self._scanned = False
        self._placement = _PlacementState()

    # -- lifecycle of the agent ------------------------------------------

    def start(self) -> StartReport:
        """Scan, load the ledger, and reconcile libvirt's networks.

        A network whose whole name is ``<prefix><instance uuid>-<port>``
        and whose port holds no claim here is deleted; a plugged port
        whose network is missing gets it back; a network holding another
        device than the ledger says is rewritten.  Any other network,
        with or without the prefix, is never touched.  Before that, the
        incoming migrations whose lease expired are released, as
        refresh() does.
        """
        with self._open("start"):
            scan = sysfs_scan.scan(self._sysfs_root)
            self._tracker.update_devices(scan, self._specs)
            self._scanned = True
            # Expired leases before reconcile: it would otherwise restore
            # networks their release deletes next, or fail on a VF the
            # downtime took away.  A release that fails keeps the claims
            # leased, and reconcile keeps their networks in step.
            expired = self.expire_leases()
            actions = self._reconcile()
            for act in actions:
                self.metrics.reconcile_action(act.action)
                LOG.info("Reconcile: %s network %s (%s)", act.action,
                         act.network, act.reason)
            return StartReport(
                devices=len(scan.devices),
                allocations=len(self._tracker.allocations()),
                scan_errors=tuple(f"{e.path}: {e.reason}"
                                  for e in scan.errors),
                actions=tuple(actions),
                expired_leases=tuple(expired),
            )

    def refresh(self) -> UpdateReport:
        """Rescan sysfs (nova-compute's periodic task), and end the
        incoming migrations whose lease expired unconfirmed (their
        networks deleted, their claims freed, logged): listed in the
        report's ``expired_leases``."""
        with self._open("refresh"):
            report = self._refresh()
            expired = self.expire_leases()
            return dataclasses.replace(report,
                                       expired_leases=tuple(expired))

    def expire_leases(self) -> list[str]:
        """Release every instance whose incoming migration was not
        confirmed within option incoming_migration_timeout; the
        instances released."""
        with self._open("expire_leases"):
            expired = []
            for inst in self._expired(PortState.INCOMING):
                try:
                    if self._expire(inst):
                        expired.append(inst)
                except exception.PciPassthroughError:
                    # The claims stay, leased: the next refresh retries.
                    LOG.exception("Cannot end the expired incoming "
                                  "migration of instance %s", inst)
            return expired

    def _expire(self, instance: str) -> bool:
        with self._instance("expire_leases", instance):
            # Confirmed or aborted meanwhile?
            if instance not in self._expired(PortState.INCOMING):
                return False
            LOG.warning("Incoming migration of instance %s was not "
                        "confirmed within %d s: deleting its networks and "
                        "freeing its claims here", instance,
                        self._lease_timeout)
            self._release(instance)
            self.metrics.released()
            self.metrics.incoming_migration_ended("expired")
            return True

    def close(self) -> None:
        """Wait for the operations in progress, then release the driver
        and the ledger.  Every later call raises AgentClosed; closing
        again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while self._active:
                self._idle.wait()
        try:
            self._driver.close()
        finally:
            self._ledger.close()

    def __enter__(self) -> "HostAgent":
        with self._open("__enter__"):
            return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- instances ---------------------------------------------------------

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              allocation: Mapping[int, str] | None = None
              ) -> list[Allocation]:
        """Claim one device per port, all or nothing.

        Ports the instance already holds are returned as they are, so a
        repeated call claims nothing twice.

        :param allocation: what the scheduler allocated in Placement: per
            port index, the UUID of the PF provider its unit is on (the
            allocation request's mappings, one request group per port).
            Each port then takes a VF of that PF only.
        :raises ClaimConflict: a port is held with another flavor, spec,
            MAC or VLAN than this request's.
        :raises InvalidPortRequest: a VLAN the network driver cannot
            carry; nothing is recorded.
        :raises AllocationMismatch: the allocation does not fit this host
            (a provider not of this host, a port without a provider, or
            no free VF of the allocated PF serves the port); nothing is
            recorded.
        """
        with self._instance("claim", instance_uuid), \
                self.metrics.time_claim():
            return self._named(self._claim(instance_uuid, ports,
                                           numa_cells, allocation))

    def plug(self, instance_uuid: str) -> list[PluggedPort]:
        """Before boot: define and start the instance's networks.

        :returns: one PluggedPort per claimed port, with the interface XML
            for the domain.
        :raises NetworkDriverError: naming the instance, port and network;
            the networks this call touched for ports that were not yet
            plugged are removed again, the failed port's included.
        """
        with self._instance("plug", instance_uuid), \
                self.metrics.time_plug():
            return self._plug(instance_uuid)

    def prepare_incoming_migration(
            self, instance_uuid: str, ports: Sequence[PortRequest],
            numa_cells: Collection[int] | None = None, *,
            allocation: Mapping[int, str] | None = None
    ) -> list[PluggedPort]:
        """On the destination, before a live migration.

        Claims devices here and defines networks with the names the
        instance uses, holding this host's VFs.

        :param allocation: the destination's Placement allocation, as
            for claim().
        :raises MigrationRefused: when this host cannot serve every port;
            nothing is left claimed or defined here.
        :raises AllocationMismatch: the allocation does not fit this
            host; nothing is claimed or defined here.
        """
        with self._instance("prepare_incoming_migration", instance_uuid), \
                self.metrics.time_incoming_migration_prepare():
            held = {a.port_index for a in
                    self._tracker.allocations(instance_uuid)}
            try:
                self._claim(instance_uuid, ports, numa_cells, allocation,
                            incoming=True)
            except (exception.ClaimFailed,
                    exception.InvalidPortRequest) as exc:
                raise exception.MigrationRefused(
                    instance=instance_uuid,
                    reason=str(exc).rstrip(".")) from exc
            fresh = {p.index for p in ports} - held
            try:
                return self._plug(instance_uuid, fresh)
            except BaseException:
                if not held:
                    # Everything here was made by this call: undo it all.
                    # The caller gets the plug's error, not the undo's.
                    try:
                        self._release(instance_uuid)
                    except Exception:
                        LOG.exception("Cannot undo the claims of incoming "
                                      "instance %s; abort_incoming_"
                                      "migration retries", instance_uuid)
                raise

    def complete_incoming_migration(self, instance_uuid: str
                                    ) -> list[Allocation]:
        """On the destination, once the migration succeeded (Nova's
        post_live_migration_at_destination): the incoming claims become
        ordinary plugged ones and their lease ends.  Idempotent.

        :raises MigrationNotPrepared: the instance holds nothing here
            (never prepared, aborted, or its lease expired).
        """
        with self._instance("complete_incoming_migration", instance_uuid):
            allocs = self._tracker.allocations(instance_uuid)
            if not allocs:
                raise exception.MigrationNotPrepared(
                    instance=instance_uuid,
                    reason="it holds no claim here: never prepared, "
                           "aborted, or its lease expired after "
                           f"{self._lease_timeout} s (option "
                           f"incoming_migration_timeout)")
            if all(a.state == PortState.PLUGGED for a in allocs):
                return self._named(allocs)
            done = self._tracker.transition(instance_uuid, PortState.PLUGGED)
            if any(a.state == PortState.INCOMING for a in allocs):
                self.metrics.incoming_migration_ended("completed")
            return self._named(done)

    def begin_outgoing_migration(self, instance_uuid: str
                                 ) -> list[Allocation]:
        """On the source, as a live migration starts: the instance's
        ports become outgoing, so that doctor reports a migration that
        neither completes nor aborts within
        option incoming_migration_timeout.  Idempotent; an instance
        holding nothing here has nothing to do."""
        with self._instance("begin_outgoing_migration", instance_uuid):
            if not self._tracker.allocations(instance_uuid):
                return []
            return self._named(self._tracker.transition(
                instance_uuid, PortState.OUTGOING,
                lease_started=self._clock()))

    def abort_outgoing_migration(self, instance_uuid: str
                                 ) -> list[PluggedPort]:
        """On the source, after a failed migration: the ports are plugged
        again here and their networks ensured."""
        with self._instance("abort_outgoing_migration", instance_uuid):
            if not self._tracker.allocations(instance_uuid):
                return []
            self._tracker.transition(instance_uuid, PortState.PLUGGED)
            return self._plug(instance_uuid)

    def complete_outgoing_migration(self, instance_uuid: str) -> None:
        """On the source, after a successful migration: delete this host's
        networks of the instance, restore its VFs' netdev states and free
        its devices."""
        with self._instance("complete_outgoing_migration", instance_uuid):
            if self._release(instance_uuid):
                self.metrics.released()

    def abort_incoming_migration(self, instance_uuid: str) -> None:
        """On the destination, after a failed migration: delete the
        networks and free the claims made here."""
        with self._instance("abort_incoming_migration", instance_uuid):
            freed = self._release(instance_uuid)
            if freed:
                self.metrics.released()
            if any(a.state == PortState.INCOMING for a in freed):
                self.metrics.incoming_migration_ended("aborted")

    def release(self, instance_uuid: str) -> list[Allocation]:
        """On destroy: delete the instance's networks, then free its
        devices.

        :raises NetworkDriverError: a network could not be removed (or
            listed); nothing was freed.
        """
        with self._instance("release", instance_uuid):
            freed = self._release(instance_uuid)
            if freed:
                self.metrics.released()
            return freed

    def doctor(self, fix: bool = False,
               placement: "PlacementClient | None" = None
               ) -> DoctorReport:
        """Compare the ledger with sysfs, libvirt's networks and the VF
        netdevs, now, and say what is wrong; with ``fix``, repair what is
        safe and ours (orphan, missing, inactive and drifted networks,
        renamed netdevs, unrestored VF states, expired incoming leases)
        and say what was left and why.  A network whose whole name does
        not parse as ours, libvirt's "default" among them, and a device
        no claim of ours explains are never touched.

        :param placement: where Placement is configured, its client
            (``PlacementClient(adapter)`` over nova's keystoneauth1
            adapter): this host's providers and the units of its
            instances are compared too, and ``fix`` repairs them with
            one placement sync.  Everything is read before anything is
            repaired, so Placement failing to answer raises before any
            change.
        :raises PlacementUnavailable, PlacementRequestFailed:
        """
        with self._open("doctor"):
            self._refresh()
            findings = self._examine()
            if placement is not None:
                findings += self._placement_findings(placement)
            if fix:
                findings = self._repair_all(findings, placement)
            self.metrics.doctor_ran(
                f.kind.label for f in findings if not f.fixed)
            for finding in findings:
                if finding.fixed:
                    self.metrics.doctor_repair(finding.kind.label)
                    LOG.info("Doctor fixed %s: %s (%s)", finding.subject,
                             finding.problem, finding.repair)
                elif fix:
                    LOG.warning("Doctor left %s: %s; %s", finding.subject,
                                finding.problem, finding.left)
                else:
                    LOG.info("Doctor found %s: %s; repair: %s",
                             finding.subject, finding.problem,
                             finding.repair)
            return DoctorReport(findings=tuple(findings), fix=fix)

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        with self._open("allocations"):
            return self._named(self._tracker.allocations(instance_uuid))

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state (see HostTracker)."""
        with self._open("device_states"):
            return self._tracker.device_states()

    def explain(self, flavor: str, count: int = 1,
                numa_cells: Collection[int] | None = None) -> Explanation:
        """Why each device does or does not serve ``count`` of ``flavor``
        (for an instance on ``numa_cells``)."""
        with self._open("explain"):
            if not self._scanned:
                self._refresh()
            return self._tracker.explain(flavor, count=count,
                                         numa_cells=numa_cells)

    def network_name(self, instance_uuid: str, port_index: int) -> str:
        with self._open("network_name"):
            return self._name(instance_uuid, port_index)

    # -- health and metrics ------------------------------------------------

    def unhealthy_pfs(self) -> dict[str, str]:
        """PF address -> why its VFs are not given out (driver
        unbound, no carrier), as of the last scan."""
        with self._open("unhealthy_pfs"):
            return self._tracker.unhealthy_pfs()

    def _metrics(self, metrics: "Metrics | None") -> "Metrics":
        from pci_passthrough.metrics import Metrics, pool_label_names

        labels = pool_label_names(self._specs.tag_names)
        if metrics is None:
            return Metrics(pools=self._tracker.pool_counts,
                           tag_labels=labels)
        metrics.use_pools(self._tracker.pool_counts)
        return metrics

    # -- Placement -------------------------------------------------------

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: dict[str, Any] | None = None
                             ) -> placement_provider_tree.TreeUpdate:
        """For the virt driver's own ``update_provider_tree``: make the
        compute node's PF providers in nova's ``ProviderTree`` this
        host's (inventories, traits; stale ones kept reserved or
        removed) and, with ``allocations``, heal the instances' PCI
        units from the ledger, in place.  The root provider is nova's
        and left alone.  Remembers the providers' UUIDs, by which
        claim() reads an allocation.

        :param provider_tree: nova.compute.provider_tree.ProviderTree
            (duck-typed: the library does not import nova).
        """
        with self._open("update_provider_tree"):
            tree = self._provider_tree(nodename)
            update = placement_provider_tree.update_provider_tree(
                provider_tree, nodename, tree, self._tracker.records(),
                allocations)
            self._placement.uuids = (nodename, {
                p.name: provider_tree.data(p.name).uuid
                for p in tree.providers})
            return update

    def use_placement_providers(self, nodename: str,
                                uuids: Mapping[str, str]) -> None:
        """Where nova does not call update_provider_tree (the standalone
        reporter, ``pci-passthrough placement sync``): the UUIDs
        Placement gave this host's providers, by provider name."""
        with self._open("use_placement_providers"):
            self._placement.uuids = (nodename, dict(uuids))

    def provider_tree(self, nodename: str | None = None) -> ProviderTree:
        """The provider tree this host reports (nodename: the option
        ``nodename``, else the host name)."""
        with self._open("provider_tree"):
            return self._provider_tree(
                nodename or placement_conf.nodename(self._conf))

    def request_groups(self, flavor: str, count: int = 1) -> list[str]:
        """The Placement request for ``count`` devices of ``flavor``:
        queries for GET /allocation_candidates (no leading "?"; at
        microversion placement_requests.MICROVERSION), one suffixed
        request group of one unit per device; the candidates are the
        union of their answers.  Empty when no provider of this host
        can serve the flavor.

        :raises UnknownFlavor, PlacementRequestError:
        """
        with self._open("request_groups"):
            tree = self._provider_tree(placement_conf.nodename(self._conf))
            return placement_requests.request_queries(
                self._flavors, flavor, count, tree.catalog())

    def _provider_tree(self, nodename: str) -> ProviderTree:
        if not self._scanned:
            self._refresh()
        devices = self._tracker.scanned_devices()
        cached = self._placement.tree
        # One tree per scan: claims read it on every call.
        if cached is not None and cached[0] is devices and \
                cached[1].nodename == nodename:
            return cached[1]
        tree = build_tree(nodename, devices, self._specs,
                          self._flavors.special_attributes)
        self._placement.tree = (devices, tree)
        return tree

    def _claim_allocated(self, instance: str, ports: Sequence[PortRequest],
                         numa_cells: Collection[int] | None,
                         allocation: Mapping[int, str],
                         held: Mapping[int, Allocation],
                         missing: Sequence[PortRequest],
                         state: PortState = PortState.CLAIMED,
                         lease_started: float | None = None
                         ) -> list[Allocation]:
        """Claim ``missing`` ports from the PFs Placement allocated; the
        ports already held must be on theirs."""
        within = self._allocated_vfs(instance, ports, allocation)
        for port in ports:
            have = held.get(port.index)
            if have is not None and have.address not in within[port.index]:
                raise exception.AllocationMismatch(
                    instance=instance,
                    reason=f"port {port.index} holds {have.address}, "
                           f"which is not a VF of the provider "
                           f"{allocation[port.index]} it was allocated on")
        try:
            new = (self._tracker.claim(
                instance, missing, numa_cells, state=state,
                lease_started=lease_started,
                within=[within[p.index] for p in missing])
                if missing else [])
        except exception.ClaimFailed as exc:
            raise exception.AllocationMismatch(
                instance=instance,
                reason=str(exc).rstrip(".")) from exc
        wanted = {p.index for p in ports}
        result = [a for a in held.values() if a.port_index in wanted]
        return sorted([*result, *new], key=lambda a: a.port_index)

    def _allocated_vfs(self, instance: str, ports: Sequence[PortRequest],
                       allocation: Mapping[int, str]
                       ) -> dict[int, frozenset[str]]:
        """Per port index, the VFs of the provider it was allocated on."""
        if not isinstance(allocation, Mapping) or not all(
                isinstance(k, int) and isinstance(v, str)
                for k, v in allocation.items()):
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"expected a mapping of port index to provider "
                       f"UUID, got {_shorten(repr(allocation))}")
        indexes = [p.index for p in ports]
        lacking = sorted(set(indexes) - set(allocation))
        extra = sorted(set(allocation) - set(indexes))
        if lacking or extra:
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"it must name one provider per requested port "
                       f"({', '.join(map(str, sorted(indexes)))}); "
                       f"missing: {', '.join(map(str, lacking)) or 'none'}"
                       f", not requested: "
                       f"{', '.join(map(str, extra)) or 'none'}")
        known = self._placement.uuids
        if known is None:
            raise exception.AllocationMismatch(
                instance=instance,
                reason="this host does not know its Placement providers "
                       "yet (update_provider_tree or "
                       "use_placement_providers has not been called)")
        nodename, uuids = known
        chosen = placement_allocation.port_providers(
            self._provider_tree(nodename), instance, uuids,
            [allocation[i] for i in indexes])
        return {i: frozenset(p.vfs)
                for i, p in zip(indexes, chosen, strict=True)}

    # -- internals -----------------------------------------------------------

    def _name(self, instance_uuid: str, port_index: int) -> str:
        return network_name(self._prefix, instance_uuid, port_index)

    def _named(self, allocs: list[Allocation]) -> list[Allocation]:
        return [dataclasses.replace(a, network=self._name(
            a.instance_uuid, a.port_index)) for a in allocs]

    def _refresh(self) -> UpdateReport:
        scan = sysfs_scan.scan(self._sysfs_root)
        report = self._tracker.update_devices(scan, self._specs)
        self._scanned = True
        return report

    @contextmanager
    def _open(self, method: str) -> Iterator[None]:
        """Count an operation in progress; refuse it once closed."""
        with self._lock:
            if self._closed:
                raise exception.AgentClosed(method=method)
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    @contextmanager
    def _instance(self, method: str, instance_uuid: str) -> Iterator[None]:
        # Operations on one instance are serialised; different instances
        # proceed in parallel (the tracker has its own lock).  A lock
        # lives only while an operation holds or waits for it, so ids
        # seen once cost nothing afterwards.
        with self._open(method):
            canonical_uuid(instance_uuid)
            with self._lock:
                entry = self._instance_locks.get(instance_uuid)
                if entry is None:
                    entry = self._instance_locks[instance_uuid] = \
                        _InstanceLock()
                entry.users += 1
            try:
                with entry.lock:
                    yield
            finally:
                with self._lock:
                    entry.users -= 1
                    if not entry.users:
                        del self._instance_locks[instance_uuid]

    def _claim(self, instance_uuid: str, ports: Sequence[PortRequest],
               numa_cells: Collection[int] | None,
               allocation: Mapping[int, str] | None = None,
               incoming: bool = False) -> list[Allocation]:
        _check_request(ports, numa_cells)
        if not self._scanned:
            # A claim before start() would see no device at all.
            self._refresh()
        self._check_vlans(ports)
        held = {a.port_index: a
                for a in self._tracker.allocations(instance_uuid)}
        if held:
            self._check_repeated(instance_uuid, ports, held)
        missing = [p for p in ports if p.index not in held]
        state, lease_started = ((PortState.INCOMING, self._clock())
                                if incoming else (PortState.CLAIMED, None))
        if allocation is not None:
            return self._claim_allocated(instance_uuid, ports, numa_cells,
                                         allocation, held, missing, state,
                                         lease_started)
        new = (self._tracker.claim(instance_uuid, missing, numa_cells,
                                   state=state, lease_started=lease_started)
               if missing else [])
        wanted = {p.index for p in ports}
        result = [a for a in held.values() if a.port_index in wanted]
        return sorted([*result, *new], key=lambda a: a.port_index)

    def _check_vlans(self, ports: Sequence[PortRequest]) -> None:
        """A VLAN the driver cannot carry is refused before anything is
        recorded (libvirt would refuse it only when the network starts)."""
        for port in ports:
            if port.vlan is None:
                continue
            refusal = self._driver.vlan_refusal()
            if refusal is not None:
                raise exception.InvalidPortRequest(
                    port=port.index,
                    reason=f"VLAN {port.vlan} cannot be carried: {refusal}")

    def _check_repeated(self, instance: str, ports: Sequence[PortRequest],
                        held: dict[int, Allocation]) -> None:
        requests = self._tracker.port_requests(instance)
        for port in ports:
            have = requests.get(port.index)
            if have is None:
                continue
            for field in _REQUEST_FIELDS:
                old, new = getattr(have, field), getattr(port, field)
                if old != new:
                    raise exception.ClaimConflict(
                        instance=instance, port=port.index,
                        address=held[port.index].address, field=field,
                        held=_shown(old), wanted=_shown(new))

    def _spec(self, alloc: Allocation) -> NetworkSpec:
        if not alloc.netdev:
            raise exception.NetworkDriverError(
                network=self._name(alloc.instance_uuid, alloc.port_index),
                instance=alloc.instance_uuid, port=alloc.port_index,
                reason=f"device {alloc.address} has no netdev to back a "
                       f"macvtap interface")
        return NetworkSpec(
            name=self._name(alloc.instance_uuid, alloc.port_index),
            netdev=alloc.netdev, vlan=alloc.vlan)

    def _plug(self, instance_uuid: str,
              fresh: Collection[int] = ()) -> list[PluggedPort]:
        """Ensure the networks of the instance's ports; ``fresh``: ports
        an incoming migration just claimed (their VFs' state is
        journalled, as a claimed port's is)."""
        allocs = sorted(self._tracker.allocations(instance_uuid),
                        key=lambda a: a.port_index)
        if not allocs:
            return []
        states = {a.state for a in allocs}
        # Incoming and outgoing ports keep their lease; anything else
        # becomes plugged (a mix is refused by the transition table).
        target = (states.pop() if len(states) == 1 and states <= {
            PortState.INCOMING, PortState.OUTGOING} else PortState.PLUGGED)
        # Networks of ports not plugged before this call: they are this
        # call's to remove if it fails.  A plugged port's network may
        # carry a running guest and is left alone.
        touched: list[str] = []
        plugged = []
        try:
            for alloc in allocs:
                spec = self._spec(alloc)
                if alloc.state not in NETWORKED:
                    # Before the step: a step that fails part-way may
                    # leave the network defined.
                    touched.append(spec.name)
                if alloc.state == PortState.CLAIMED or \
                        alloc.port_index in fresh:
                    self._journal(alloc)
                self._call(instance_uuid, alloc.port_index, spec.name,
                           self._driver.ensure_network, spec)
                xml = self._call(instance_uuid, alloc.port_index,
                                 spec.name, self._driver.interface_xml,
                                 spec.name, alloc.mac)
                plugged.append(PluggedPort(
                    index=alloc.port_index, network=spec.name,
                    address=alloc.address, netdev=spec.netdev,
                    mac=alloc.mac, interface_xml=xml))
            # Refused when the claims were freed meanwhile (another
            # process's free): the networks just made then go too.
            self._tracker.transition(instance_uuid, PortState(target))
        except BaseException as exc:
            LOG.warning("Plugging instance %s failed (%s); removing the "
                        "networks it touched: %s", instance_uuid, exc,
                        ", ".join(touched) or "none")
            for name in touched:
                try:
                    self._driver.delete_network(name)
                except Exception:
                    LOG.exception("Cannot remove network %s of instance "
                                  "%s; release the instance to retry",
                                  name, instance_uuid)
            raise
        return plugged

    def _release(self, instance_uuid: str) -> list[Allocation]:
        instance = canonical_uuid(instance_uuid)
        ports = {a.port_index for a in self._tracker.allocations(instance)}
        # Networks a crash left before their claims were recorded (or
        # after they were freed) carry the instance's name too.
        present = self._call(instance, "-", f"{self._prefix}*",
                             self._driver.list_networks, self._prefix)
        for name in present:
            parsed = parse_network_name(self._prefix, name)
            if parsed and parsed[0] == instance:
                ports.add(parsed[1])
        for port in sorted(ports):
            name = self._name(instance, port)
            # A device is freed only once its network is gone, so a
            # device is never handed out while a network still holds it.
            self._call(instance, port, name, self._driver.delete_network,
                       name)
        # The networks are gone: the VFs get back the state they had
        # before their plug.  One that cannot is freed all the same (a
        # destroy must succeed) but keeps its journal, which keeps it
        # from being handed out until doctor --fix restores it.
        journals = self._tracker.journals()
        for alloc in self._tracker.allocations(instance):
            if alloc.address in journals:
                self._restore(alloc.address, journals[alloc.address])
        return self._tracker.free(instance)

    # -- VF hygiene ------------------------------------------------------

    def _journal(self, alloc: Allocation) -> None:
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

    def _restore(self, address: str, journal: NetdevState) -> str | None:
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

    def _expired(self, state: PortState) -> list[str]:
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
                and now - started >= self._lease_timeout]

    def _call(self, instance_uuid: str, port: int | str, name: str,
              fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a driver step; any failure, a plugin's raw exception
        included, becomes a NetworkDriverError naming the instance, the
        port and the network, logged with its traceback."""
        try:
            return fn(*args, **kwargs)
        except exception.NetworkDriverError:
            raise
        except exception.PciPassthroughError as exc:
            # The driver's own error already says what failed; the caller
            # gets it, wrapped.
            LOG.debug("Network %s of instance %s port %s failed", name,
                      instance_uuid, port, exc_info=True)
            raise exception.NetworkDriverError(
                network=name, instance=instance_uuid, port=port,
                reason=str(exc).rstrip(".")) from exc
        except Exception as exc:
            # A plugin's raw exception: its traceback is the only clue.
            LOG.error("Network driver %s failed on network %s of instance "
                      "%s port %s", type(self._driver).__name__, name,
                      instance_uuid, port, exc_info=True)
            raise exception.NetworkDriverError(
                network=name, instance=instance_uuid, port=port,
                reason=f"the network driver raised "
                       f"{type(exc).__name__}: {exc}") from exc

    def _reconcile(self) -> list[ReconcileAction]:
        actions: list[ReconcileAction] = []
        present = self._driver.list_networks(self._prefix)
        expected: dict[str, tuple[Allocation, NetworkSpec]] = {}
        held = set()
        for alloc in self._tracker.allocations():
            held.add((alloc.instance_uuid, alloc.port_index))
            if alloc.state in NETWORKED and alloc.netdev:
                spec = self._spec(alloc)
                expected[spec.name] = (alloc, spec)
        for name in sorted(present):
            parsed = parse_network_name(self._prefix, name)
            # Only a name that parses whole as ours is ours: a prefix
            # such as "d" must not make libvirt's "default" an orphan.
            if parsed is None or parsed in held:
                continue
            self._call(parsed[0], parsed[1], name,
                       self._driver.delete_network, name)
            actions.append(ReconcileAction(
                Repair.DELETED, name, "no claim here holds its port"))
        for name, (alloc, spec) in sorted(expected.items()):
            have = present.get(name)
            if have == spec:
                continue
            self._call(alloc.instance_uuid, alloc.port_index, name,
                       self._driver.ensure_network, spec)
            if have is None:
                actions.append(ReconcileAction(
                    Repair.RESTORED, name,
                    f"port {alloc.port_index} holds {alloc.address}"))
            else:
                actions.append(ReconcileAction(
                    Repair.REWRITTEN, name,
                    f"held {have.netdev}, the ledger says {spec.netdev}"))
        return actions

    # -- doctor ----------------------------------------------------------

    def _examine(self) -> list[Finding]:
        allocs = self._tracker.allocations()
        return doctor_checks.examine(doctor_checks.HostState(
            prefix=self._prefix, sysfs_root=self._sysfs_root,
            allocations=tuple(allocs),
            expired_incoming=tuple(self._expired(PortState.INCOMING)),
            expired_outgoing=tuple(self._expired(PortState.OUTGOING)),
            lease_timeout=self._lease_timeout,
            networks=self._driver.network_status(self._prefix),
            forward_mode=self._driver.forward_mode(),
            recorded_netdevs={r.address: r.netdev
                              for r in self._ledger.records()},
            devices=self._tracker.devices(),
            scanned=tuple(self._tracker.scanned_devices()),
            journals=self._tracker.journals(),
            unhealthy_pfs=self._tracker.unhealthy_pfs()),
            self._spec, self._netdevs)

    def _placement_findings(self, client: "PlacementClient"
                            ) -> list[Finding]:
        from pci_passthrough.doctor.placement_audit import audit, observe

        nodename = placement_conf.nodename(self._conf)
        records = self._tracker.records()
        observed = observe(client, nodename,
                           {r.instance_uuid for r in records})
        return audit(self._provider_tree(nodename), records, observed)

    def _repair_all(self, findings: list[Finding],
                    client: "PlacementClient | None") -> list[Finding]:
        """The host's repairs one by one, then Placement's in one sync
        from the ledger as those left it."""
        from pci_passthrough.doctor import placement_repair as repair

        local = [self._repair(f) for f in findings
                 if f.kind not in PLACEMENT_KINDS]
        remote = [f for f in findings if f.kind in PLACEMENT_KINDS]
        if client is None:
            return local + remote
        nodename = placement_conf.nodename(self._conf)
        done = repair.repair(
            client, self._provider_tree(nodename), self._tracker.records(),
            remote, traits=placement_requests.flavor_traits(self._flavors),
            classes=placement_requests.flavor_classes(self._flavors))
        if done.provider_uuids is not None:
            self._placement.uuids = (nodename, done.provider_uuids)
        return local + list(done.findings)

    def _repair(self, finding: Finding) -> Finding:
        if not finding.fixable:
            return finding.unsafe()
        try:
            why = self._apply(finding)
        except exception.PciPassthroughError as exc:
            why = str(exc)
        if why is None:
            return dataclasses.replace(finding, fixed=True)
        return dataclasses.replace(finding, left=why)

    def _apply(self, finding: Finding) -> str | None:
        """Carry out one repair; None, or why it was not made."""
        kind, subject = finding.kind, finding.subject.split(" ", 1)[1]
        if kind is FindingKind.LEASE_EXPIRED:
            return None if self._expire(subject) else \
                "confirmed or released meanwhile"
        if kind is FindingKind.VF_NOT_RESTORED:
            journal = self._tracker.journals().get(subject)
            if journal is None:
                return None  # restored meanwhile
            if subject in {a.address for a in self._tracker.allocations()}:
                return "claimed meanwhile"
            return self._restore(subject, journal)
        if kind is FindingKind.NETDEV_CHANGED:
            dev = self._tracker.device(subject)
            if dev is None or not dev.netdev:
                return "the device or its netdev is gone meanwhile"
            self._tracker.set_netdev(subject, dev.netdev)
            return None
        parsed = parse_network_name(self._prefix, subject)
        assert parsed is not None, finding
        instance, port = parsed
        with self._instance("doctor", instance):
            allocs = {a.port_index: a
                      for a in self._tracker.allocations(instance)}
            if kind is FindingKind.ORPHAN_NETWORK:
                if port in allocs:
                    return "its port was claimed meanwhile"
                self._call(instance, port, subject,
                           self._driver.delete_network, subject)
                return None
            alloc = allocs.get(port)
            if alloc is None or alloc.state not in NETWORKED:
                return "its port was released meanwhile"
            self._call(instance, port, subject,
                       self._driver.ensure_network, self._spec(alloc))
            return None


@dataclasses.dataclass(slots=True)
class _PlacementState:
    #: (nodename, provider name -> UUID), once learnt.
    uuids: tuple[str, dict[str, str]] | None = None
    #: The last scan's devices and the tree built from them.
    tree: tuple[tuple[Any, ...], ProviderTree] | None = None


@dataclasses.dataclass(slots=True)
class _InstanceLock:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: Operations holding or waiting for the lock.
    users: int = 0


def _shown(value: object) -> str:
    return "none" if value is None else repr(value)


def _check_request(ports: object, numa_cells: object) -> None:
    """API callers' input is checked before anything is looked up."""
    if isinstance(ports, (str, bytes)) or not isinstance(ports, Sequence) \
            or not all(isinstance(p, PortRequest) for p in ports):
        raise exception.InvalidPortRequest(
            port="-", reason=f"expected a sequence of PortRequest, got "
                             f"{_shorten(repr(ports))}")
    if numa_cells is not None and (
            isinstance(numa_cells, (str, bytes))
            or not isinstance(numa_cells, Collection)
            or not all(isinstance(c, int) and not isinstance(c, bool)
                       and c >= 0 for c in numa_cells)):
        raise exception.InvalidPortRequest(
            port="-", reason=f"numa_cells {_shorten(repr(numa_cells))} is "
                             f"not a collection of NUMA node numbers")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."

