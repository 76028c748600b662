"""HostAgent's calls on one port of an instance, known by its Neutron
port UUID (nova's ``vif['id']``): a part of HostAgent kept apart so
that each stays readable; HostAgent is the only class that mixes it
in."""

import functools
from collections.abc import Collection, Mapping
from typing import Any

from pci_passthrough.agent._one_port import OnePort
from pci_passthrough.agent._services import Services
from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.agent.ports import PluggedPort
from pci_passthrough.model.claims import Allocation, PortRequest


class PortCalls:
    """attach_interface, detach_interface, Neutron's binding and the
    binding profile."""

    _gate: OperationGate
    _parts: Services

    @functools.cached_property
    def _one_port(self) -> OnePort:
        parts = self._parts
        return OnePort(ports=parts.ports, tracker=parts.tracker,
                       networks=parts.networks, placement=parts.placement,
                       metrics=parts.metrics)

    def claim_port(self, instance_uuid: str, port: PortRequest,
                   numa_cells: Collection[int] | None = None, *,
                   allocation: Mapping[Any, Any] | None = None,
                   provider_mapping: Mapping[str, Any] | None = None
                   ) -> Allocation:
        """Claim a device for one more port of the instance (nova's
        attach_interface, before binding_profile); a port it holds
        already is returned as it is.

        The port takes the lowest slot free on the instance (its
        network's index) and keeps it until released.

        :param port: a request naming its port (``port_id``); see
            pci_passthrough.nova.ports for one made from nova's VIF.
        :param allocation, provider_mapping: as for HostAgent.claim().
        :raises InvalidPortRequest: no ``port_id``, or the instance is
            being live-migrated.
        :raises ClaimFailed, ClaimConflict, AllocationMismatch: as
            claim(); nothing is recorded.
        """
        with self._gate.instance("claim_port", instance_uuid):
            return self._one_port.claim(instance_uuid, port, numa_cells,
                                        allocation, provider_mapping)

    def plug_port(self, instance_uuid: str, port_id: str) -> PluggedPort:
        """Define and start the network of one claimed port, on the
        VF it claimed: the interface XML to attach to the guest.
        Plugging a plugged port ensures its network.

        :raises InvalidPortRequest: the port holds no claim here, or the
            instance is being live-migrated.
        :raises NetworkDriverError: naming the port's network; a network
            this call made is removed again.
        """
        with self._gate.instance("plug_port", instance_uuid):
            return self._one_port.plug(instance_uuid, port_id)

    def bind_port(self, instance_uuid: str, port_id: str, *,
                  mac: str | None, vlan: int | None) -> Allocation:
        """Record the MAC and VLAN Neutron bound a claimed port with.

        nova claims a port's VF before Neutron binds the port (the
        binding needs the VF: binding_profile()), so a claim made from
        nova's PCI request knows neither; plugging uses what this
        records.  Repeating what the claim holds changes nothing.

        :param vlan: None for an untagged port.
        :raises InvalidPortRequest: the port holds no claim here, or a
            MAC or VLAN that is malformed or cannot be carried; nothing
            changed.
        :raises ClaimConflict: the port's network is defined already
            with other values; release the port to claim it anew.
        """
        with self._gate.instance("bind_port", instance_uuid):
            return self._one_port.bind(instance_uuid, port_id, mac, vlan)

    def release_port(self, instance_uuid: str, port_id: str
                     ) -> Allocation | None:
        """After nova's detach_interface: delete the port's network,
        restore its VF's netdev state and free its device; the claim
        freed, None when the port held nothing here.  The other ports
        keep their slots and networks.

        :raises NetworkDriverError: the network could not be removed;
            nothing was freed.
        :raises InvalidPortRequest: the instance is being live-migrated.
        """
        with self._gate.instance("release_port", instance_uuid):
            return self._one_port.release(instance_uuid, port_id)

    def binding_profile(self, instance_uuid: str, port_id: str
                        ) -> dict[str, Any]:
        """The fields nova writes into the port's Neutron binding
        profile from its PCI claim, for the VF this port claimed here:
        ``pci_slot``, ``pci_vendor_info`` ("vendor:product"),
        ``physical_network``, ``pf_mac_address`` and ``vf_num``.

        :raises InvalidPortRequest: the port holds no claim here, or
            its device is gone from sysfs.
        """
        with self._gate.instance("binding_profile", instance_uuid):
            return self._one_port.binding_profile(instance_uuid, port_id)

    def placement_resources(self, instance_uuid: str,
                            port_id: str | None = None
                            ) -> dict[str, dict[str, int]]:
        """What the instance's claims here (or one port's) take in
        Placement, in nova's form: {provider UUID: {resource class:
        units}}, one unit per VF on its PF's provider; what nova adds to
        the instance's allocation (and removes from it at a port's
        detach).

        :raises AllocationMismatch: the providers' UUIDs are not known
            (update_provider_tree or use_placement_providers has not
            run), or a held VF is on no provider of this host.
        :raises InvalidPortRequest: ``port_id`` holds no claim here.
        """
        with self._gate.instance("placement_resources", instance_uuid):
            return self._one_port.resources(instance_uuid, port_id)

    def port_slots(self, instance_uuid: str) -> dict[str, int]:
        """The slot of each port of the instance claimed by port UUID:
        a live migration's destination claims them in the same slots
        (prepare_incoming_migration), so that the networks the domain
        XML names exist there."""
        with self._gate.instance("port_slots", instance_uuid):
            return self._one_port.slots(instance_uuid)
