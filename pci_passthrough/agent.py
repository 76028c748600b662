"""The host-level API a nova-compute fork calls.

HostAgent ties the scanner, the device tracker with its ledger, and the
network driver together.  Each method is idempotent: calling it again after
success, or after a crash part-way, converges to the same state.  A failure
part-way through several ports undoes what the call did for the ports
already done.
"""

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception, sysfs_scan
from pci_passthrough.claims import (
    Allocation,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.instance_id import canonical_uuid
from pci_passthrough.ledger import ALLOCATED, Ledger
from pci_passthrough.network import load_network_driver
from pci_passthrough.network.base import NetworkDriver, NetworkSpec
from pci_passthrough.network.names import network_name, parse_network_name
from pci_passthrough.settings import load_settings
from pci_passthrough.tracker import HostTracker

LOG = logging.getLogger(__name__)
A = TypeVar("A")
R = TypeVar("R")


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

    action: str          # "deleted", "restored" or "rewritten"
    network: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class StartReport:
    devices: int
    allocations: int
    scan_errors: tuple[str, ...]
    actions: tuple[ReconcileAction, ...]


class HostAgent:
    """SR-IOV macvtap passthrough for the instances of one compute host.

    :param conf: a ConfigOpts on which
        :func:`pci_passthrough.opts.register_opts` was called and which has
        been parsed.
    :param network_driver: a driver instance to use instead of the one the
        option ``network_driver`` names (tests and embedding services).
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 network_driver: NetworkDriver | None = None) -> None:
        # The whole configuration is validated here, before anything on the
        # host is touched: no partial configuration is ever used.
        settings = load_settings(conf)
        self._conf = conf
        self._sysfs_root: str = settings.sysfs_root
        self._prefix: str = settings.network_name_prefix
        self._specs = settings.device_specs
        self._flavors = settings.flavors
        self._driver = network_driver or load_network_driver(conf)
        self._ledger = Ledger(settings.state_path)
        self._tracker = HostTracker(self._flavors, self._ledger)
        self._lock = threading.Lock()
        self._instance_locks: dict[str, threading.Lock] = {}
        self._scanned = False

    # -- lifecycle of the agent ------------------------------------------

    def start(self) -> StartReport:
        """Scan, load the ledger, and reconcile libvirt's networks.

        A network carrying the prefix whose instance holds no claim here is
        deleted; an allocated port whose network is missing gets it back; a
        network holding another device than the ledger says is rewritten.
        Networks without the prefix are never touched.
        """
        scan = sysfs_scan.scan(self._sysfs_root)
        self._tracker.update_devices(scan, self._specs)
        self._scanned = True
        actions = self._reconcile()
        for act in actions:
            LOG.info("Reconcile: %s network %s (%s)", act.action,
                     act.network, act.reason)
        return StartReport(
            devices=len(scan.devices),
            allocations=len(self._tracker.allocations()),
            scan_errors=tuple(f"{e.path}: {e.reason}" for e in scan.errors),
            actions=tuple(actions),
        )

    def refresh(self) -> UpdateReport:
        """Rescan sysfs (nova-compute's periodic task)."""
        scan = sysfs_scan.scan(self._sysfs_root)
        report = self._tracker.update_devices(scan, self._specs)
        self._scanned = True
        return report

    def close(self) -> None:
        self._driver.close()
        self._ledger.close()

    def __enter__(self) -> "HostAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- instances ---------------------------------------------------------

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None
              ) -> list[Allocation]:
        """Claim one device per port, all or nothing.

        Ports the instance already holds are returned as they are, so a
        repeated call claims nothing twice.
        """
        with self._instance(instance_uuid):
            return self._named(self._claim(instance_uuid, ports,
                                           numa_cells))

    def plug(self, instance_uuid: str) -> list[PluggedPort]:
        """Before boot: define and start the instance's networks.

        :returns: one PluggedPort per claimed port, with the interface XML
            for the domain.
        :raises NetworkDriverError: naming the instance, port and network;
            the networks this call made are removed again.
        """
        with self._instance(instance_uuid):
            return self._plug(instance_uuid)

    def prepare_incoming_migration(
            self, instance_uuid: str, ports: Sequence[PortRequest],
            numa_cells: Collection[int] | None = None
    ) -> list[PluggedPort]:
        """On the destination, before a live migration.

        Claims devices here and defines networks with the names the
        instance uses, holding this host's VFs.

        :raises MigrationRefused: when this host cannot serve every port;
            nothing is left claimed or defined here.
        """
        with self._instance(instance_uuid):
            held = {a.port_index for a in
                    self._tracker.allocations(instance_uuid)}
            try:
                self._claim(instance_uuid, ports, numa_cells)
            except exception.ClaimFailed as exc:
                raise exception.MigrationRefused(
                    instance=instance_uuid,
                    reason=str(exc).rstrip(".")) from exc
            try:
                return self._plug(instance_uuid)
            except exception.PciPassthroughError:
                if not held:
                    # Everything here was made by this call: undo it all.
                    self._release(instance_uuid)
                raise

    def complete_outgoing_migration(self, instance_uuid: str) -> None:
        """On the source, after a successful migration: delete this host's
        networks of the instance and free its devices."""
        self.release(instance_uuid)

    def abort_incoming_migration(self, instance_uuid: str) -> None:
        """On the destination, after a failed migration: delete the
        networks and free the claims made here."""
        self.release(instance_uuid)

    def release(self, instance_uuid: str) -> list[Allocation]:
        """On destroy: delete the instance's networks, free its devices."""
        with self._instance(instance_uuid):
            return self._release(instance_uuid)

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        return self._named(self._tracker.allocations(instance_uuid))

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state (see HostTracker)."""
        return self._tracker.device_states()

    def _named(self, allocs: list[Allocation]) -> list[Allocation]:
        return [dataclasses.replace(a, network=self.network_name(
            a.instance_uuid, a.port_index)) for a in allocs]

    def explain(self, flavor: str, count: int = 1) -> Explanation:
        """Why each device does or does not serve ``count`` of ``flavor``."""
        return self._tracker.explain(flavor, count=count)

    def network_name(self, instance_uuid: str, port_index: int) -> str:
        return network_name(self._prefix, instance_uuid, port_index)

    # -- internals -----------------------------------------------------------

    @contextmanager
    def _instance(self, instance_uuid: str) -> Iterator[None]:
        # Operations on one instance are serialised; different instances
        # proceed in parallel (the tracker has its own lock).
        canonical_uuid(instance_uuid)
        with self._lock:
            lock = self._instance_locks.setdefault(instance_uuid,
                                                   threading.Lock())
        with lock:
            yield

    def _claim(self, instance_uuid: str, ports: Sequence[PortRequest],
               numa_cells: Collection[int] | None) -> list[Allocation]:
        if not self._scanned:
            # A claim before start() would see no device at all.
            self.refresh()
        held = {a.port_index: a
                for a in self._tracker.allocations(instance_uuid)}
        missing = [p for p in ports if p.index not in held]
        new = (self._tracker.claim(instance_uuid, missing, numa_cells)
               if missing else [])
        wanted = {p.index for p in ports}
        result = [a for a in held.values() if a.port_index in wanted]
        return sorted([*result, *new], key=lambda a: a.port_index)

    def _spec(self, alloc: Allocation) -> NetworkSpec:
        if not alloc.netdev:
            raise exception.NetworkDriverError(
                network=self.network_name(alloc.instance_uuid,
                                          alloc.port_index),
                instance=alloc.instance_uuid, port=alloc.port_index,
                reason=f"device {alloc.address} has no netdev to back a "
                       f"macvtap interface")
        return NetworkSpec(
            name=self.network_name(alloc.instance_uuid, alloc.port_index),
            netdev=alloc.netdev, vlan=alloc.vlan)

    def _plug(self, instance_uuid: str) -> list[PluggedPort]:
        allocs = sorted(self._tracker.allocations(instance_uuid),
                        key=lambda a: a.port_index)
        made: list[str] = []
        plugged = []
        try:
            for alloc in allocs:
                spec = self._spec(alloc)
                changed = self._call(instance_uuid, alloc.port_index,
                                     spec.name, self._driver.ensure_network,
                                     spec)
                if changed:
                    made.append(spec.name)
                plugged.append(PluggedPort(
                    index=alloc.port_index, network=spec.name,
                    address=alloc.address, netdev=spec.netdev,
                    mac=alloc.mac,
                    interface_xml=self._driver.interface_xml(spec.name,
                                                             alloc.mac)))
        except exception.PciPassthroughError:
            LOG.error("Plugging instance %s failed; removing the networks "
                      "made: %s", instance_uuid, made, exc_info=True)
            for name in made:
                try:
                    self._driver.delete_network(name)
                except exception.PciPassthroughError:
                    LOG.exception("Cannot remove network %s", name)
            raise
        self._tracker.allocate(instance_uuid)
        return plugged

    def _release(self, instance_uuid: str) -> list[Allocation]:
        instance = canonical_uuid(instance_uuid)
        ports = {a.port_index for a in self._tracker.allocations(instance)}
        # Networks a crash left before their claims were recorded (or
        # after they were freed) carry the instance's name too.
        for name in self._driver.list_networks(self._prefix):
            parsed = parse_network_name(self._prefix, name)
            if parsed and parsed[0] == instance:
                ports.add(parsed[1])
        for port in sorted(ports):
            name = self.network_name(instance, port)
            # A device is freed only once its network is gone, so a
            # device is never handed out while a network still holds it.
            self._call(instance, port, name, self._driver.delete_network,
                       name)
        return self._tracker.free(instance)

    def _call(self, instance_uuid: str, port: int, name: str,
              fn: Callable[[A], R], arg: A) -> R:
        """Run a driver step; its failure becomes a NetworkDriverError
        naming the instance, the port and the network."""
        try:
            return fn(arg)
        except exception.NetworkDriverError:
            raise
        except exception.PciPassthroughError as exc:
            LOG.error("Network %s of instance %s port %s failed", name,
                      instance_uuid, port, exc_info=True)
            raise exception.NetworkDriverError(
                network=name, instance=instance_uuid, port=port,
                reason=str(exc)) from exc

    def _reconcile(self) -> list[ReconcileAction]:
        actions: list[ReconcileAction] = []
        present = self._driver.list_networks(self._prefix)
        expected: dict[str, tuple[Allocation, NetworkSpec]] = {}
        held = set()
        for alloc in self._tracker.allocations():
            held.add((alloc.instance_uuid, alloc.port_index))
            if alloc.state == ALLOCATED and alloc.netdev:
                spec = self._spec(alloc)
                expected[spec.name] = (alloc, spec)
        for name in sorted(present):
            parsed = parse_network_name(self._prefix, name)
            if parsed is None or parsed not in held:
                self._driver.delete_network(name)
                actions.append(ReconcileAction(
                    "deleted", name, "no claim here holds its port"))
        for name, (alloc, spec) in sorted(expected.items()):
            have = present.get(name)
            if have == spec:
                continue
            self._call(alloc.instance_uuid, alloc.port_index, name,
                       self._driver.ensure_network, spec)
            if have is None:
                actions.append(ReconcileAction(
                    "restored", name,
                    f"port {alloc.port_index} holds {alloc.address}"))
            else:
                actions.append(ReconcileAction(
                    "rewritten", name,
                    f"held {have.netdev}, the ledger says {spec.netdev}"))
        return actions
