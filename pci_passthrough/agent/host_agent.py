"""HostAgent: the host-level API a nova-compute fork calls, each method
handed to the service whose concern it is (see the package's
docstring)."""

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from pci_passthrough.agent._port_calls import PortCalls
from pci_passthrough.agent._services import make_services
from pci_passthrough.agent.clock import LeaseClock, SystemClock
from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.agent.lifecycle import StartReport
from pci_passthrough.agent.ports import PluggedPort
from pci_passthrough.doctor.report import DoctorReport
from pci_passthrough.hygiene.access import NetdevAccess
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.model.claims import (
    Allocation,
    Explanation,
    PortRequest,
    UpdateReport,
)
from pci_passthrough.model.device import PciDevice
from pci_passthrough.network.base import NetworkDriver
from pci_passthrough.placement import provider_tree as placement_provider_tree
from pci_passthrough.placement.tree import ProviderTree

if TYPE_CHECKING:
    # prometheus-client costs 50 ms to import: loaded with the first
    # agent, not with the commands that import this module.
    from pci_passthrough.metrics import Metrics
    from pci_passthrough.placement.client import PlacementClient


class HostAgent(PortCalls):
    """SR-IOV macvtap passthrough for the instances of one compute host.

    The calls on one port (claim_port, plug_port, release_port,
    binding_profile, port_slots) are PortCalls'.

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
    :param clock: what migration leases are timed on: by default the
        host's wall clock, boot clock and boot id (SystemClock); tests
        pass a clock they step (pci_passthrough.fixtures.agent_host's
        Clock).  A plain callable of seconds since the epoch times them
        on the wall clock alone.
    :param readonly: open the ledger read-only (see Ledger): for
        commands that only look, such as ``doctor`` without fix; every
        call that would change a claim raises LedgerError.
    :param metrics: where claims, plugs, releases and repairs are
        counted; by default a Metrics of its own.  Either way it reads
        its pool gauges from this agent (unless given a pool source
        already); ``agent.metrics`` is what a service registers in its
        prometheus-client registry.
    :param gate: where every call enters: by default one of its own.
        One passed in lets the caller watch which instances calls are
        busy with (OperationGate.busy_instances).
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 network_driver: NetworkDriver | None = None, *,
                 netdev_access: NetdevAccess | None = None,
                 clock: LeaseClock | Callable[[], float] | None = None,
                 readonly: bool = False,
                 metrics: "Metrics | None" = None,
                 gate: OperationGate | None = None) -> None:
        parts = make_services(conf, network_driver, netdev_access,
                              clock or SystemClock(), readonly, metrics,
                              gate)
        self.metrics = parts.metrics
        self._gate = parts.gate
        self._parts = parts

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
        with self._gate.open("start"):
            return self._parts.lifecycle.start()

    def refresh(self) -> UpdateReport:
        """Rescan sysfs (nova-compute's periodic task), and end the
        incoming migrations whose lease expired unconfirmed and whose
        domain is gone (their networks deleted, their claims freed,
        logged): listed in the report's ``expired_leases``."""
        with self._gate.open("refresh"):
            return self._parts.lifecycle.refresh()

    def expire_leases(self) -> list[str]:
        """Release every instance whose incoming migration was not
        confirmed within option incoming_migration_timeout and whose
        domain the network driver says is gone; the instances
        released."""
        return self._parts.leases.expire_all()

    def close(self) -> None:
        """Wait for the operations in progress, then release the driver
        and the ledger.  Every later call raises AgentClosed; closing
        again does nothing."""
        self._parts.lifecycle.close()

    def __enter__(self) -> "HostAgent":
        with self._gate.open("__enter__"):
            return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              allocation: Mapping[Any, Any] | None = None,
              provider_mapping: Mapping[str, Any] | None = None,
              unplaced: Collection[str] = ()
              ) -> list[Allocation]:
        """Claim one device per port, all or nothing.

        Ports the instance already holds are returned as they are, so a
        repeated call claims nothing twice.  A request naming its port
        (``port_id``) takes the slot that port holds, else the lowest
        free one (its index is not read).

        :param allocation: what the scheduler allocated in Placement: per
            port index, the UUID of the PF provider its unit is on (the
            allocation request's mappings, one request group per port);
            or, with ``provider_mapping``, nova's allocation of the
            instance (provider UUID -> {"resources": ...}).  Each port
            then takes a VF of that PF only.
        :param provider_mapping: nova's request group mapping
            (requester id, the port's UUID, -> provider UUIDs): each
            port's PF provider is the one of this host in its group.
        :param unplaced: with ``provider_mapping``, the UUIDs of ports
            that have no request group (their flavor cannot be one in
            Placement): they take any VF that serves them.
        :raises ClaimConflict: a port is held with another flavor, spec,
            MAC or VLAN than this request's.
        :raises InvalidPortRequest: a VLAN the network driver cannot
            carry; nothing is recorded.
        :raises AllocationMismatch: the allocation does not fit this host
            (a provider not of this host, a port without a provider, or
            no free VF of the allocated PF serves the port); nothing is
            recorded.
        """
        with self._gate.instance("claim", instance_uuid):
            return self._parts.ports.claim(
                instance_uuid, ports, numa_cells, allocation=allocation,
                provider_mapping=provider_mapping, unplaced=unplaced)

    def plug(self, instance_uuid: str) -> list[PluggedPort]:
        """Before boot: define and start the instance's networks.

        :returns: one PluggedPort per claimed port, with the interface XML
            for the domain.
        :raises NetworkDriverError: naming the instance, port and network;
            the networks this call touched for ports that were not yet
            plugged are removed again, the failed port's included.
        """
        with self._gate.instance("plug", instance_uuid):
            return self._parts.ports.plug(instance_uuid)

    def release(self, instance_uuid: str) -> list[Allocation]:
        """On destroy: delete the instance's networks, then free its
        devices.

        :raises NetworkDriverError: a network could not be removed (or
            listed); nothing was freed.
        """
        with self._gate.instance("release", instance_uuid):
            return self._parts.ports.release(instance_uuid)

    def prepare_incoming_migration(
            self, instance_uuid: str, ports: Sequence[PortRequest],
            numa_cells: Collection[int] | None = None, *,
            allocation: Mapping[Any, Any] | None = None,
            provider_mapping: Mapping[str, Any] | None = None,
            unplaced: Collection[str] = ()
    ) -> list[PluggedPort]:
        """On the destination, before a live migration.

        Claims devices here and defines networks with the names the
        instance uses, holding this host's VFs.

        :param allocation, provider_mapping, unplaced: the
            destination's Placement allocation, as for claim().
        :raises MigrationRefused: when this host cannot serve every port;
            nothing is left claimed or defined here.
        :raises AllocationMismatch: the allocation does not fit this
            host; nothing is claimed or defined here.
        """
        with self._gate.instance("prepare_incoming_migration",
                                 instance_uuid):
            return self._parts.migrations.prepare_incoming(
                instance_uuid, ports, numa_cells, allocation=allocation,
                provider_mapping=provider_mapping, unplaced=unplaced)

    def complete_incoming_migration(self, instance_uuid: str
                                    ) -> list[Allocation]:
        """On the destination, once the migration succeeded (Nova's
        post_live_migration_at_destination): the incoming claims become
        ordinary plugged ones and their lease ends.  Idempotent.

        :raises MigrationNotPrepared: the instance holds nothing here
            (never prepared, aborted, or its lease expired).
        """
        with self._gate.instance("complete_incoming_migration",
                                 instance_uuid):
            return self._parts.migrations.complete_incoming(instance_uuid)

    def begin_outgoing_migration(self, instance_uuid: str
                                 ) -> list[Allocation]:
        """On the source, as a live migration starts: the instance's
        ports become outgoing, so that doctor reports a migration that
        neither completes nor aborts within
        option incoming_migration_timeout.  Idempotent; an instance
        holding nothing here has nothing to do."""
        with self._gate.instance("begin_outgoing_migration", instance_uuid):
            return self._parts.migrations.begin_outgoing(instance_uuid)

    def abort_outgoing_migration(self, instance_uuid: str
                                 ) -> list[PluggedPort]:
        """On the source, after a failed migration: the ports are plugged
        again here and their networks ensured."""
        with self._gate.instance("abort_outgoing_migration", instance_uuid):
            return self._parts.migrations.abort_outgoing(instance_uuid)

    def complete_outgoing_migration(self, instance_uuid: str) -> None:
        """On the source, after a successful migration: delete this host's
        networks of the instance, restore its VFs' netdev states and free
        its devices."""
        with self._gate.instance("complete_outgoing_migration",
                                 instance_uuid):
            self._parts.migrations.complete_outgoing(instance_uuid)

    def abort_incoming_migration(self, instance_uuid: str) -> None:
        """On the destination, after a failed migration: delete the
        networks and free the claims made here."""
        with self._gate.instance("abort_incoming_migration", instance_uuid):
            self._parts.migrations.abort_incoming(instance_uuid)

    def doctor(self, fix: bool = False,
               placement: "PlacementClient | None" = None
               ) -> DoctorReport:
        """Compare the ledger with sysfs, libvirt's networks and the VF
        netdevs, now, and say what is wrong; with ``fix``, repair what is
        safe and ours (orphan, missing, inactive and drifted networks,
        renamed netdevs, unrestored VF states, expired incoming leases,
        leases starting ahead of the wall clock) and say what was left
        and why.  A network whose whole name does not parse as ours,
        libvirt's "default" among them, and a device no claim of ours
        explains are never touched.

        :param placement: where Placement is configured, its client
            (``PlacementClient(adapter)`` over nova's keystoneauth1
            adapter): this host's providers and the units of its
            instances are compared too, and ``fix`` repairs them with
            one placement sync.  Everything is read before anything is
            repaired, so Placement failing to answer raises before any
            change.
        :raises PlacementUnavailable, PlacementRequestFailed:
        """
        with self._gate.open("doctor"):
            return self._parts.doctor.run(fix, placement)

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        with self._gate.open("allocations"):
            return self._parts.ports.allocations(instance_uuid)

    def device_states(self) -> dict[str, str]:
        """Every assignable device's state (see HostTracker)."""
        with self._gate.open("device_states"):
            return self._parts.tracker.device_states()

    def devices(self) -> dict[str, PciDevice]:
        """The assignable devices of the last scan, by PCI address."""
        with self._gate.open("devices"):
            return self._parts.tracker.devices()

    def explain(self, flavor: str, count: int = 1,
                numa_cells: Collection[int] | None = None) -> Explanation:
        """Why each device does or does not serve ``count`` of ``flavor``
        (for an instance on ``numa_cells``)."""
        with self._gate.open("explain"):
            return self._parts.ports.explain(flavor, count, numa_cells)

    def network_name(self, instance_uuid: str, port_index: int) -> str:
        with self._gate.open("network_name"):
            return self._parts.networks.name(instance_uuid, port_index)

    def unhealthy_pfs(self) -> dict[str, str]:
        """PF address -> why its VFs are not given out (driver
        unbound, no carrier), as of the last scan."""
        with self._gate.open("unhealthy_pfs"):
            return self._parts.tracker.unhealthy_pfs()

    @property
    def netdev_access(self) -> NetdevAccess:
        """How this agent reads and restores VF netdev states (its
        ``netdev_access`` parameter, or the default it chose)."""
        return self._parts.netdevs

    @property
    def network_driver(self) -> NetworkDriver:
        """The driver that keeps this agent's networks (its
        ``network_driver`` parameter, or the one the option names)."""
        return self._parts.networks.driver

    def vf_journals(self) -> dict[str, NetdevState]:
        """The VF netdev states journalled before a plug and not
        restored yet, by device address: such a VF is not handed out
        until its state is restored (at release, else doctor --fix)."""
        with self._gate.open("vf_journals"):
            return self._parts.tracker.journals()

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
        with self._gate.open("update_provider_tree"):
            return self._parts.placement.update_provider_tree(
                provider_tree, nodename, allocations)

    def use_placement_providers(self, nodename: str,
                                uuids: Mapping[str, str]) -> None:
        """Where nova does not call update_provider_tree (the standalone
        reporter, ``pci-passthrough placement sync``): the UUIDs
        Placement gave this host's providers, by provider name."""
        with self._gate.open("use_placement_providers"):
            self._parts.placement.remember_providers(nodename, uuids)

    def provider_tree(self, nodename: str | None = None) -> ProviderTree:
        """The provider tree this host reports (nodename: the option
        ``nodename``, else the host name)."""
        with self._gate.open("provider_tree"):
            return self._parts.placement.tree(nodename)

    def request_groups(self, flavor: str, count: int = 1) -> list[str]:
        """The Placement request for ``count`` devices of ``flavor``:
        queries for GET /allocation_candidates (no leading "?"; at
        microversion placement_requests.MICROVERSION), one suffixed
        request group of one unit per device; the candidates are the
        union of their answers.  Empty when no provider of this host
        can serve the flavor.

        :raises UnknownFlavor, PlacementRequestError:
        """
        with self._gate.open("request_groups"):
            return self._parts.placement.request_groups(flavor, count)

