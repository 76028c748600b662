"""Nova's view of a port turned into the library's PortRequest.

Pure translation, no I/O, and no nova import: the fork hands in nova's
objects as they are, read duck-typed and checked as hostile input (a
VIF of ``network_info`` is a dict: ``id``, ``address``, ``vnic_type``,
``profile``, ``details`` with ``vlan``, ``network`` with
``meta['physical_network']``; the instance has ``uuid`` and
``flavor.extra_specs``).  Whatever is malformed is an InvalidPortRequest
naming the port.

Only ``vnic_type`` ``macvtap`` ports are the library's; every other
port is nova's own (port_request() returns None).

A port's PCI flavor, first found wins:

1. the nova flavor's extra spec ``pci_passthrough_port:flavor:<physnet>``
   (its ports on that physical network);
2. its extra spec ``pci_passthrough_port:flavor`` (its other macvtap
   ports);
3. the option ``[pci_passthrough] physnet_flavors`` for the port's
   physical network;
4. else an inline spec ``{"physical_network": <physnet>}``: what nova's
   own request for the port asks for (create_resource_requests).

The extra specs are the operator's (a nova flavor is): they name a
configured PCI flavor, never a spec, so a user cannot ask for a special
group the operator did not give them.  Their namespace is not
``pci_passthrough:``: nova-api validates the keys of the namespaces it
registers, and refuses any other key of ``pci_passthrough:`` at
microversion 2.86 and later.  A port is not named by its position:
network_info's order changes when a port is detached.

The special-attribute rule then decides as for every request: a flavor
or spec that does not name ``group`` never gets a VF of a group.

A port whose binding profile asks for ``trusted`` gets it as nova does:
the inline spec names ``trusted`` (so only a VF tagged trusted serves
it); a named flavor must require ``trusted`` itself, or the port is
refused rather than given an untrusted VF.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config.flavors import FlavorSet
from pci_passthrough.config.settings import HostSettings, load_settings
from pci_passthrough.model.claims import PortRequest, canonical_port_id

VNIC_TYPE_MACVTAP = "macvtap"
#: The nova flavor extra spec naming the PCI flavor of its macvtap ports;
#: ``<FLAVOR_EXTRA_SPEC>:<physnet>`` for those on one physical network.
FLAVOR_EXTRA_SPEC = "pci_passthrough_port:flavor"
# nova's strutils.bool_from_string, the strings it reads as true.
_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


@dataclasses.dataclass(frozen=True, slots=True)
class PortPolicy:
    """What decides a port's flavor on this host besides the port: the
    configured flavors and the option physnet_flavors."""

    flavors: FlavorSet
    physnet_flavors: Mapping[str, str] = dataclasses.field(
        default_factory=dict)

    @classmethod
    def from_settings(cls, settings: HostSettings) -> "PortPolicy":
        return cls(settings.flavors, settings.physnet_flavors)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> "PortPolicy":
        """From nova-compute's parsed configuration.

        :raises ConfigError: as HostAgent(conf) would.
        """
        return cls.from_settings(load_settings(conf))


def is_ours(vif: Any) -> bool:
    """Whether the library serves this VIF (a macvtap port)."""
    return isinstance(vif, Mapping) and \
        vif.get("vnic_type") == VNIC_TYPE_MACVTAP


def port_id_of(vif: Any) -> str:
    """The VIF's port UUID, canonical.

    :raises InvalidPortRequest: it has none.
    """
    if not isinstance(vif, Mapping):
        raise exception.InvalidPortRequest(
            port="-", reason=f"a VIF is a dict, not {shown(vif)}")
    return canonical_port_id(vif.get("id"))


def port_id_of_request(pci_request: Any) -> str:
    """The port UUID of a port's PCI request (its ``requester_id``),
    canonical.

    :raises InvalidPortRequest: it has none.
    """
    return canonical_port_id(getattr(pci_request, "requester_id", None))


def port_requests(network_info: Any, instance: Any, policy: PortPolicy,
                  *, slots: Mapping[str, int] | None = None
                  ) -> list[PortRequest]:
    """The requests of the instance's macvtap ports, in network_info's
    order.

    :param slots: the slot of each port (HostAgent.port_slots() on the
        source of a live migration); without it, every request's index
        is 0 and HostAgent.claim() gives each its slot.
    :raises InvalidPortRequest: naming the port.
    """
    if isinstance(network_info, (str, bytes, Mapping)) or \
            not isinstance(network_info, Sequence):
        raise exception.InvalidPortRequest(
            port="-", reason=f"network_info {shown(network_info)} is not "
                             f"a list of VIFs")
    requests = []
    for vif in network_info:
        if not is_ours(vif):
            continue
        request = port_request(vif, instance, policy)
        assert request is not None and request.port_id is not None
        if slots is not None:
            slot = slots.get(request.port_id)
            if type(slot) is not int:
                raise exception.InvalidPortRequest(
                    port=request.port_id,
                    reason=f"the slots give it {shown(slot)}; expected "
                           f"the index it has on the source")
            request = dataclasses.replace(request, index=slot)
        requests.append(request)
    return requests


def port_request(vif: Any, instance: Any, policy: PortPolicy,
                 *, slot: int = 0) -> PortRequest | None:
    """The request of one VIF; None when it is not a macvtap port.

    :param slot: the request's index (read only by
        prepare_incoming_migration; claims give a port its slot).
    :raises InvalidPortRequest: naming the port.
    """
    if not isinstance(vif, Mapping):
        raise exception.InvalidPortRequest(
            port="-", reason=f"a VIF is a dict, not {shown(vif)}")
    if not is_ours(vif):
        return None
    port_id = canonical_port_id(vif.get("id"))

    def bad(reason: str) -> exception.InvalidPortRequest:
        return exception.InvalidPortRequest(port=port_id, reason=reason)

    physnet = _physnet(vif, bad)
    trusted = _trusted(_mapping(vif, "profile", bad), bad)
    return _request(port_id, physnet, trusted, instance, policy, bad,
                    slot=slot, mac=vif.get("address"),
                    vlan=_vlan(_mapping(vif, "details", bad), bad))


def pci_port_request(pci_request: Any, instance: Any, policy: PortPolicy
                     ) -> PortRequest:
    """The request of a macvtap port from the PCI request nova made for
    it (network.neutron.API.create_resource_requests: ``requester_id``
    the port's UUID, ``spec`` one dict with ``physical_network`` and,
    when the port asks, ``trusted``): what nova's resource claim has,
    before Neutron binds the port.  Its MAC and VLAN are not known
    yet: HostAgent.bind_port() records them once Neutron has bound it.

    :raises InvalidPortRequest: naming the port.
    """
    port_id = canonical_port_id(getattr(pci_request, "requester_id", None))

    def bad(reason: str) -> exception.InvalidPortRequest:
        return exception.InvalidPortRequest(port=port_id, reason=reason)

    specs = getattr(pci_request, "spec", None)
    if isinstance(specs, (str, bytes, Mapping)) or \
            not isinstance(specs, Sequence) or len(specs) != 1 or \
            not isinstance(specs[0], Mapping):
        raise bad(f"its PCI request's spec {shown(specs)} is not one "
                  f"dict")
    spec = specs[0]
    physnet = spec.get("physical_network")
    if not _is_physnet(physnet):
        raise bad(f"its PCI request names no physical network "
                  f"({shown(physnet)})")
    return _request(port_id, physnet, _trusted(spec, bad), instance,
                    policy, bad)


def _request(port_id: str, physnet: str, trusted: bool, instance: Any,
             policy: PortPolicy, bad: Any, *, slot: int = 0,
             mac: Any = None, vlan: int | None = None) -> PortRequest:
    flavor, source = _named_flavor(instance, physnet, policy, bad)
    spec: dict[str, str] | None = None
    if flavor is None:
        spec = {"physical_network": physnet}
        if trusted:
            spec["trusted"] = "true"
    elif trusted and not all(alt.get("trusted") == "true"
                             for alt in policy.flavors.get(flavor)):
        raise bad(f"its binding profile asks for a trusted VF, but PCI "
                  f"flavor {flavor!r} ({source}) does not require "
                  f"trusted=true")
    try:
        return PortRequest(index=slot, flavor=flavor, spec=spec, mac=mac,
                           vlan=vlan, port_id=port_id)
    except exception.InvalidPortRequest as exc:
        raise bad(_reason(exc)) from None


def _reason(exc: exception.InvalidPortRequest) -> str:
    return str(exc.kwargs.get("reason", exc))


def _mapping(vif: Mapping[str, Any], key: str, bad: Any
             ) -> Mapping[str, Any]:
    value = vif.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad(f"its {key} {shown(value)} is not a dict")
    return value


def _physnet(vif: Mapping[str, Any], bad: Any) -> str:
    network = _mapping(vif, "network", bad)
    meta = network.get("meta")
    physnet = meta.get("physical_network") if isinstance(
        meta, Mapping) else None
    if not _is_physnet(physnet):
        raise bad(f"its network has no physical network "
                  f"(network['meta']['physical_network'] is "
                  f"{shown(physnet)}); a macvtap port needs a flat or "
                  f"VLAN network")
    return physnet


def _is_physnet(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value) and \
        value.isprintable() and len(value) <= 255


def _trusted(profile: Mapping[str, Any], bad: Any) -> bool:
    value = profile.get("trusted")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise bad(f"its binding profile's trusted {shown(value)} is not a "
              f"boolean")


def _vlan(details: Mapping[str, Any], bad: Any) -> int | None:
    value = details.get("vlan")
    if isinstance(value, str) and value.isascii() and value.isdigit() \
            and len(value) <= 4:
        value = int(value)
    if value is None or (type(value) is int and value == 0):
        # nova plugs a VF with VLAN 0 when none is given: untagged.
        return None
    if type(value) is not int or not 1 <= value <= 4094:
        raise bad(f"its VLAN {shown(value)} is not from 1 to 4094")
    return value


def _named_flavor(instance: Any, physnet: str, policy: PortPolicy,
                  bad: Any) -> tuple[str | None, str]:
    """The PCI flavor named for the port, and by what."""
    specs = _extra_specs(instance, bad)
    for key in (f"{FLAVOR_EXTRA_SPEC}:{physnet}", FLAVOR_EXTRA_SPEC):
        if key in specs:
            return _known(specs[key], f"extra spec {key} of the instance's "
                                      f"flavor", policy, bad), key
    named = policy.physnet_flavors.get(physnet)
    if named is not None:
        return _known(named, f"option physnet_flavors for {physnet}",
                      policy, bad), "option physnet_flavors"
    return None, "inline"


def _known(name: Any, source: str, policy: PortPolicy, bad: Any) -> str:
    if not isinstance(name, str) or name not in policy.flavors.flavors:
        known = ", ".join(sorted(policy.flavors.flavors)) or "none"
        raise bad(f"{source} names {shown(name)}, not a configured PCI "
                  f"flavor (known: {known})")
    return name


def _extra_specs(instance: Any, bad: Any) -> Mapping[str, Any]:
    flavor = getattr(instance, "flavor", None)
    specs = getattr(flavor, "extra_specs", None) if flavor is not None \
        else None
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        raise bad(f"the instance's flavor.extra_specs {shown(specs)} is "
                  f"not a dict")
    return specs


def shown(value: object) -> str:
    """``value`` as an error message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
