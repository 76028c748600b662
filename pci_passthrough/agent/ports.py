"""An instance's ports on this host: claiming a device for each, all or
nothing; plugging (defining and starting their networks); releasing
(deleting the networks, restoring the VFs, freeing the devices).

A device is freed only once its network is gone, so that a device is
never handed out while a network still holds it.  A VF is its PCI
address, never its netdev's name: a plug reads the name from sysfs at
that moment (the last scan may be older than a rename), and plugs
nothing when it cannot.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent._checks import check_request, shown
from pci_passthrough.agent._live_netdevs import with_live_netdevs
from pci_passthrough.agent.host_placement import HostPlacement
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.port_slots import place
from pci_passthrough.agent.scan import HostScan
from pci_passthrough.agent.vf_hygiene import VfHygiene
from pci_passthrough.ledger import LeaseStart
from pci_passthrough.model.claims import Allocation, Explanation, PortRequest
from pci_passthrough.model.instance_id import canonical_uuid
from pci_passthrough.model.states import NETWORKED, PortState
from pci_passthrough.network.names import parse_network_name
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

LOG = logging.getLogger(__name__)
# The fields of a port request a repeated claim must repeat as they are.
_REQUEST_FIELDS = ("flavor", "spec", "mac", "vlan", "needs_netdev",
                   "port_id")


@dataclasses.dataclass(frozen=True, slots=True)
class PluggedPort:
    """One guest port whose network is defined and active on this host."""

    index: int
    network: str
    address: str
    netdev: str
    mac: str | None
    interface_xml: str


class Ports:
    """Claims, plugs and releases the ports of this host's instances.

    The caller serialises the calls on one instance (OperationGate).

    :param clock: reads the start of an incoming claim's lease.
    """

    def __init__(self, *, tracker: HostTracker, networks: HostNetworks,
                 hygiene: VfHygiene, placement: HostPlacement,
                 scan: HostScan, metrics: "Metrics",
                 clock: Callable[[], LeaseStart]) -> None:
        self._tracker = tracker
        self._networks = networks
        self._hygiene = hygiene
        self._placement = placement
        self._scan = scan
        self._metrics = metrics
        self._clock = clock

    # -- what HostAgent's methods of the same names do ---------------------

    def allocations(self, instance_uuid: str | None = None
                    ) -> list[Allocation]:
        return self._networks.named(self._tracker.allocations(instance_uuid))

    def explain(self, flavor: str, count: int = 1,
                numa_cells: Collection[int] | None = None) -> Explanation:
        self._scan.ensure()
        return self._tracker.explain(flavor, count=count,
                                     numa_cells=numa_cells)

    def claim(self, instance_uuid: str, ports: Sequence[PortRequest],
              numa_cells: Collection[int] | None = None, *,
              allocation: Mapping[Any, Any] | None = None,
              provider_mapping: Mapping[str, Any] | None = None,
              unplaced: Collection[str] = ()
              ) -> list[Allocation]:
        with self._metrics.time_claim():
            return self._networks.named(self.claim_devices(
                instance_uuid, ports, numa_cells, allocation,
                provider_mapping=provider_mapping, unplaced=unplaced))

    def plug(self, instance_uuid: str) -> list[PluggedPort]:
        with self._metrics.time_plug():
            return self.plug_networks(instance_uuid)

    def release(self, instance_uuid: str) -> list[Allocation]:
        freed = self.unplug(instance_uuid)
        if freed:
            self._metrics.released()
        return freed

    # -- the steps, for migrations and lease expiry too ---------------------

    def claim_devices(self, instance_uuid: str,
                      ports: Sequence[PortRequest],
                      numa_cells: Collection[int] | None,
                      allocation: Mapping[Any, Any] | None = None,
                      incoming: bool = False, *,
                      provider_mapping: Mapping[str, Any] | None = None,
                      unplaced: Collection[str] = ()
                      ) -> list[Allocation]:
        """Claim a device for each port the instance does not hold yet
        (leased, when ``incoming``); the ports' claims, by index.

        A request naming its port takes the port's slot (see
        pci_passthrough.agent.port_slots); an incoming one keeps the slot it
        gives, which is the source's.
        """
        check_request(ports, numa_cells)
        self._scan.ensure()
        self.check_vlans(ports)
        held = {a.port_index: a
                for a in self._tracker.allocations(instance_uuid)}
        ports = place(
            instance_uuid, ports, self._tracker.port_requests(
                instance_uuid) if held else {},
            {i: a.address for i, a in held.items()}, keep=incoming)
        if held:
            self._check_repeated(instance_uuid, ports, held)
        missing = [p for p in ports if p.index not in held]
        state, lease_started = ((PortState.INCOMING, self._clock())
                                if incoming else (PortState.CLAIMED, None))
        within = None
        if allocation is not None:
            within = self._allocated(instance_uuid, ports, allocation, held,
                                     provider_mapping, unplaced)
        try:
            new = (self._tracker.claim(
                instance_uuid, missing, numa_cells, state=state,
                lease_started=lease_started,
                within=[within[p.index] for p in missing]
                if within is not None else None)
                if missing else [])
        except exception.ClaimFailed as exc:
            if within is None:
                raise
            raise exception.AllocationMismatch(
                instance=instance_uuid,
                reason=str(exc).rstrip(".")) from exc
        wanted = {p.index for p in ports}
        result = [a for a in held.values() if a.port_index in wanted]
        return sorted([*result, *new], key=lambda a: a.port_index)

    def plug_networks(self, instance_uuid: str,
                      fresh: Collection[int] = ()) -> list[PluggedPort]:
        """Ensure the networks of the instance's ports; ``fresh``: ports
        an incoming migration just claimed (their VFs' state is
        journalled, as a claimed port's is).

        :raises VfNetdevUnresolved: a VF's netdev cannot be read from
            sysfs; nothing was touched.
        """
        allocs = sorted(self._tracker.allocations(instance_uuid),
                        key=lambda a: a.port_index)
        if not allocs:
            return []
        # Every name before any step: one that cannot be read refuses
        # the whole call with nothing touched.
        allocs = with_live_netdevs(self._scan, self._tracker,
                                   self._networks, instance_uuid, allocs)
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
                spec = self._networks.spec(alloc)
                if alloc.state not in NETWORKED:
                    # Before the step: a step that fails part-way may
                    # leave the network defined.
                    touched.append(spec.name)
                if alloc.state == PortState.CLAIMED or \
                        alloc.port_index in fresh:
                    self._hygiene.journal(alloc)
                self._networks.ensure(instance_uuid, alloc.port_index, spec)
                xml = self._networks.call(
                    instance_uuid, alloc.port_index, spec.name,
                    self._networks.driver.interface_xml, spec.name,
                    alloc.mac)
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
                    self._networks.driver.delete_network(name)
                except Exception:
                    LOG.exception("Cannot remove network %s of instance "
                                  "%s; release the instance to retry",
                                  name, instance_uuid)
            raise
        return plugged

    def unplug(self, instance_uuid: str) -> list[Allocation]:
        """Delete the instance's networks, restore its VFs and free its
        devices; the claims freed.

        :raises NetworkDriverError: a network could not be removed (or
            listed); nothing was freed.
        """
        instance = canonical_uuid(instance_uuid)
        prefix = self._networks.prefix
        ports = {a.port_index for a in self._tracker.allocations(instance)}
        # Networks a crash left before their claims were recorded (or
        # after they were freed) carry the instance's name too.
        present = self._networks.call(
            instance, "-", f"{prefix}*",
            self._networks.driver.list_networks, prefix)
        for name in present:
            parsed = parse_network_name(prefix, name)
            if parsed and parsed[0] == instance:
                ports.add(parsed[1])
        for port in sorted(ports):
            self._networks.delete(instance, port,
                                  self._networks.name(instance, port))
        # The networks are gone: the VFs get back the state they had
        # before their plug.  One that cannot is freed all the same (a
        # destroy must succeed) but keeps its journal, which keeps it
        # from being handed out until doctor --fix restores it.
        self._hygiene.restore_held(self._tracker.allocations(instance))
        return self._tracker.free(instance)

    def plug_one(self, instance_uuid: str, alloc: Allocation
                 ) -> PluggedPort:
        """Ensure one port's network while the instance's other ports
        are plugged (attach_interface).  A network this call made is
        removed again when it fails.

        :raises VfNetdevUnresolved, NetworkDriverError:
        """
        (alloc,) = with_live_netdevs(self._scan, self._tracker,
                                     self._networks, instance_uuid, [alloc])
        spec = self._networks.spec(alloc)
        fresh = alloc.state not in NETWORKED
        try:
            if alloc.state == PortState.CLAIMED:
                self._hygiene.journal(alloc)
            self._networks.ensure(instance_uuid, alloc.port_index, spec)
            xml = self._networks.call(
                instance_uuid, alloc.port_index, spec.name,
                self._networks.driver.interface_xml, spec.name, alloc.mac)
            if fresh:
                self._tracker.transition(instance_uuid, PortState.PLUGGED)
        except BaseException as exc:
            if fresh:
                LOG.warning("Plugging instance %s port %s failed (%s); "
                            "removing its network %s", instance_uuid,
                            alloc.port_index, exc, spec.name)
                try:
                    self._networks.driver.delete_network(spec.name)
                except Exception:
                    LOG.exception("Cannot remove network %s of instance "
                                  "%s; release the port to retry",
                                  spec.name, instance_uuid)
            raise
        return PluggedPort(index=alloc.port_index, network=spec.name,
                           address=alloc.address, netdev=spec.netdev,
                           mac=alloc.mac, interface_xml=xml)

    def unplug_one(self, instance_uuid: str, alloc: Allocation
                   ) -> Allocation | None:
        """Delete one port's network, restore its VF and free its
        device (detach_interface); the claim freed.

        :raises NetworkDriverError: the network could not be removed;
            nothing was freed.
        """
        self._networks.delete(instance_uuid, alloc.port_index,
                              self._networks.name(instance_uuid,
                                                  alloc.port_index))
        self._hygiene.restore_held([alloc])
        return self._tracker.free_port(instance_uuid, alloc.port_index)

    # -- checks ------------------------------------------------------------

    def _allocated(self, instance: str, ports: Sequence[PortRequest],
                   allocation: Mapping[Any, Any],
                   held: Mapping[int, Allocation],
                   provider_mapping: Mapping[str, Any] | None,
                   unplaced: Collection[str] = ()
                   ) -> dict[int, frozenset[str] | None]:
        """Per port, the VFs of the PF Placement allocated it on (None:
        Placement did not place it); the ports already held must be on
        theirs."""
        within = self._placement.allocated_vfs(instance, ports, allocation,
                                               provider_mapping, unplaced)
        for port in ports:
            have = held.get(port.index)
            only = within[port.index]
            if have is not None and only is not None and \
                    have.address not in only:
                raise exception.AllocationMismatch(
                    instance=instance,
                    reason=f"port {port.name} holds {have.address}, "
                           f"which is not a VF of the provider"
                           f"{_provider(allocation, port, provider_mapping)}"
                           f" it was allocated on")
        return within

    def check_vlans(self, ports: Sequence[PortRequest]) -> None:
        """A VLAN the driver cannot carry is refused before anything is
        recorded (libvirt would refuse it only when the network starts)."""
        for port in ports:
            if port.vlan is None:
                continue
            refusal = self._networks.driver.vlan_refusal()
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
                        instance=instance, port=port.name,
                        address=held[port.index].address, field=field,
                        held=shown(old), wanted=shown(new))


def _provider(allocation: Mapping[Any, Any], port: PortRequest,
              provider_mapping: Mapping[str, Any] | None) -> str:
    """" <UUID>" of the port's provider in the old form of allocation."""
    return "" if provider_mapping is not None else \
        f" {allocation[port.index]}"
