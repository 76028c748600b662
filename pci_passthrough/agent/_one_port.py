"""One port of a running instance at a time, known by its Neutron port
UUID: what nova's attach_interface and detach_interface need, and the
binding profile nova writes for a port before the guest uses it.

Each call is all or nothing and idempotent, as the instance calls are:
claiming a held port returns its claim, plugging a plugged port ensures
its network, releasing a port not held does nothing.  A port keeps its
slot (the index in its network's name) while it is claimed, so that a
detach never renames another port's network.  During a live migration
of the instance the ports move together and one port is not changed
alone.
"""

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pci_passthrough import exception
from pci_passthrough.agent._binding_profile import binding_profile
from pci_passthrough.agent._checks import shown
from pci_passthrough.agent.host_placement import HostPlacement
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.port_slots import find
from pci_passthrough.agent.ports import PluggedPort, Ports
from pci_passthrough.model.claims import Allocation, PortRequest
from pci_passthrough.model.states import NETWORKED, PortState
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

_MIGRATING = frozenset({PortState.INCOMING, PortState.OUTGOING})


class OnePort:
    """What HostAgent's per-port methods do; the caller holds the
    instance's lock (OperationGate)."""

    def __init__(self, *, ports: Ports, tracker: HostTracker,
                 networks: HostNetworks, placement: HostPlacement,
                 metrics: "Metrics") -> None:
        self._ports = ports
        self._tracker = tracker
        self._networks = networks
        self._placement = placement
        self._metrics = metrics

    def claim(self, instance_uuid: str, port: PortRequest,
              numa_cells: Collection[int] | None = None,
              allocation: Mapping[Any, Any] | None = None,
              provider_mapping: Mapping[str, Any] | None = None
              ) -> Allocation:
        if not isinstance(port, PortRequest) or port.port_id is None:
            raise exception.InvalidPortRequest(
                port=getattr(port, "index", "-"),
                reason="claim_port needs a PortRequest naming its port "
                       "(port_id)")
        self._refuse_migrating(instance_uuid, port.port_id,
                               self._tracker.allocations(instance_uuid))
        with self._metrics.time_claim():
            (alloc,) = self._ports.claim_devices(
                instance_uuid, [port], numa_cells, allocation,
                provider_mapping=provider_mapping)
        return self._networks.named([alloc])[0]

    def plug(self, instance_uuid: str, port_id: str) -> PluggedPort:
        allocs = self._tracker.allocations(instance_uuid)
        alloc = self._held(instance_uuid, port_id, allocs)
        self._refuse_migrating(instance_uuid, port_id, allocs)
        with self._metrics.time_plug():
            others = {a.state for a in allocs
                      if a.port_index != alloc.port_index}
            if others <= {PortState.PLUGGED}:
                return self._ports.plug_one(instance_uuid, alloc)
            # Another port is claimed and not plugged yet: the instance's
            # ports are plugged together, as plug() plugs them.
            plugged = self._ports.plug_networks(instance_uuid)
        return next(p for p in plugged if p.index == alloc.port_index)

    def bind(self, instance_uuid: str, port_id: str, mac: str | None,
             vlan: int | None) -> Allocation:
        allocs = self._tracker.allocations(instance_uuid)
        alloc = self._held(instance_uuid, port_id, allocs)
        held = self._tracker.port_requests(instance_uuid)[alloc.port_index]
        # Checked as a claim's request is (MAC form, VLAN range), and
        # refused naming the port, not its slot.
        try:
            wanted = dataclasses.replace(held, mac=mac, vlan=vlan)
        except exception.InvalidPortRequest as exc:
            raise exception.InvalidPortRequest(
                port=port_id, reason=exc.kwargs.get("reason", exc)) from None
        if (held.mac, held.vlan) == (wanted.mac, wanted.vlan):
            return self._networks.named([alloc])[0]
        if alloc.state in NETWORKED:
            # Its network carries the old VLAN, maybe under a running
            # guest: a new binding is a new claim.
            field = "mac" if held.mac != wanted.mac else "vlan"
            raise exception.ClaimConflict(
                instance=instance_uuid, port=port_id,
                address=alloc.address, field=field,
                held=shown(getattr(held, field)),
                wanted=shown(getattr(wanted, field)))
        self._ports.check_vlans([wanted])
        return self._networks.named(
            [self._tracker.set_request(instance_uuid, wanted)])[0]

    def release(self, instance_uuid: str, port_id: str
                ) -> Allocation | None:
        allocs = self._tracker.allocations(instance_uuid)
        alloc = find(instance_uuid, allocs, port_id)
        if alloc is None:
            return None
        self._refuse_migrating(instance_uuid, port_id, allocs)
        freed = self._ports.unplug_one(instance_uuid, alloc)
        return self._networks.named([freed])[0] if freed else None

    def binding_profile(self, instance_uuid: str, port_id: str
                        ) -> dict[str, Any]:
        alloc = self._held(instance_uuid, port_id,
                           self._tracker.allocations(instance_uuid))
        scanned = {d.address: d for d in self._tracker.scanned_devices()}
        device = scanned.get(alloc.address)
        if device is None:
            raise exception.InvalidPortRequest(
                port=port_id, reason=f"its device {alloc.address} is gone "
                                     f"from sysfs")
        pf = scanned.get(device.parent_addr) if device.parent_addr else \
            None
        return binding_profile(device, pf,
                               self._placement.device_tags(device))

    def resources(self, instance_uuid: str, port_id: str | None
                  ) -> dict[str, dict[str, int]]:
        allocs = self._tracker.allocations(instance_uuid)
        if port_id is not None:
            allocs = [self._held(instance_uuid, port_id, allocs)]
        return self._placement.resources(instance_uuid,
                                         [a.address for a in allocs])

    def slots(self, instance_uuid: str) -> dict[str, int]:
        return {a.port_id: a.port_index
                for a in self._tracker.allocations(instance_uuid)
                if a.port_id is not None}

    def _held(self, instance: str, port_id: str,
              allocs: Sequence[Allocation]) -> Allocation:
        alloc = find(instance, allocs, port_id)
        if alloc is None:
            raise exception.InvalidPortRequest(
                port=port_id, reason=f"instance {instance} holds no claim "
                                     f"for it here")
        return alloc

    @staticmethod
    def _refuse_migrating(instance: str, port_id: str,
                          allocs: Sequence[Allocation]) -> None:
        moving = sorted({a.state for a in allocs} & _MIGRATING)
        if moving:
            raise exception.InvalidPortRequest(
                port=port_id, reason=f"instance {instance} is being "
                                     f"live-migrated (its ports here are "
                                     f"{', '.join(moving)}); attach or "
                                     f"detach once the migration ends")
