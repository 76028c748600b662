"""A macvtap port's request group for nova's scheduler.

Where nova turns an instance's PCI requests into Placement request groups
(``RequestSpec.generate_request_groups_from_pci_requests``: at boot, and
again for every move, on nova-api and nova-conductor), the fork asks for
the group of each port the plugin serves.  The scheduler then allocates
the port's VF on one of the library's PF providers, so that a host
without a free VF that serves the port is never chosen, and the
special-attribute rule holds in Placement: the group forbids the marker
trait of every special attribute its flavor does not name.

A group is one unit of one resource class with required and forbidden
traits, nova's RequestGroup.  A port gets one when its PCI flavor (chosen
as the compute chooses it, pci_passthrough.nova.ports) says its class as
nova's alias does: ``resource_class``, or ``vendor_id`` and
``product_id`` (nova's default class ``CUSTOM_PCI_<VENDOR>_<PRODUCT>``),
and every alternative of the flavor comes to the same group.  Any other
port gets none (None): Placement cannot say "one of these classes" or
"one of these trait sets", so the compute's claim chooses its VF and
nova adds its unit to the allocation afterwards.

No I/O and no nova import: nova's PCI request and flavor are read
duck-typed, as pci_passthrough.nova.ports reads them.
"""

import dataclasses
from typing import Any

from pci_passthrough import exception
from pci_passthrough.config.flavors import FlavorSpec
from pci_passthrough.model import placement_names as names
from pci_passthrough.model.placement_names import RESOURCE_CLASS_TAG
from pci_passthrough.nova import ports as nova_ports
from pci_passthrough.placement import requests as placement_requests


@dataclasses.dataclass(frozen=True, slots=True)
class PortGroup:
    """One unit of ``resource_class`` from one provider that has every
    ``required`` trait and no ``forbidden`` one."""

    resource_class: str
    required: frozenset[str]
    forbidden: frozenset[str]

    @property
    def resources(self) -> dict[str, int]:
        return {self.resource_class: 1}

    @property
    def traits(self) -> frozenset[str]:
        return self.required | self.forbidden


@dataclasses.dataclass(frozen=True, slots=True)
class _FlavorHolder:
    """What pci_port_request reads of an instance: its flavor."""

    flavor: Any


def port_group(pci_request: Any, flavor: Any,
               policy: nova_ports.PortPolicy) -> PortGroup | None:
    """The request group of a macvtap port's PCI request, or None when
    its flavor cannot be one group.

    :param pci_request: nova's InstancePCIRequest of the port
        (``requester_id`` its UUID, ``spec`` its physical network).
    :param flavor: the nova flavor of the instance (``extra_specs``).
    :raises InvalidPortRequest: naming the port: the request, the
        flavor's extra spec or the PCI flavor it names is malformed.
    """
    request = nova_ports.pci_port_request(pci_request, _FlavorHolder(flavor),
                                          policy)
    port = request.port_id or "-"
    if request.flavor is not None:
        specs = policy.flavors.get(request.flavor)
    else:
        assert request.spec is not None
        specs = policy.flavors.inline(request.spec, 0)
    special = policy.flavors.special_attributes
    found: set[PortGroup] = set()
    for spec in specs:
        try:
            traits = placement_requests.spec_traits(spec, special)
        except exception.PlacementRequestError:
            # It pins an address, or names a trait Placement cannot
            # spell: only the compute can decide.
            return None
        if traits is None:
            continue
        rc = _resource_class(spec, port)
        if rc is None:
            return None
        found.add(PortGroup(rc, *traits))
    if len(found) != 1:
        return None
    return found.pop()


def _resource_class(spec: FlavorSpec, port: str) -> str | None:
    named = spec.get(RESOURCE_CLASS_TAG)
    if named is not None:
        try:
            return names.resource_class(named)
        except ValueError as exc:
            raise exception.InvalidPortRequest(port=port,
                                               reason=str(exc)) from None
    vendor, product = spec.get("vendor_id"), spec.get("product_id")
    if vendor is None or product is None:
        return None
    return names.default_resource_class(vendor, product)
