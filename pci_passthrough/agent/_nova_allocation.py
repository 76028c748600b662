"""Nova's form of a scheduler's decision, read as the provider each port
takes its VF from.

Nova keeps an instance's allocation as provider UUID -> {"resources":
{class: amount}} and, per request group, the providers that fulfil it
(RequestSpec.get_request_group_mapping(): requester id -> provider
UUIDs; a port's group has the port's UUID as requester id).  A port's
provider is the one provider of this host in its group; the allocation
must hold a unit of that provider's class for every port put on it.
Both come from outside the library and are checked as such.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.agent._checks import shorten
from pci_passthrough.model.claims import PortRequest


def _mismatch(instance: str, reason: str) -> exception.AllocationMismatch:
    return exception.AllocationMismatch(instance=instance, reason=reason)


def amounts(instance: str, allocation: Any,
            classes: Mapping[str, str]) -> dict[str, int]:
    """Per provider of this host in ``allocation``, the units of its
    class allocated there.

    :param classes: this host's provider UUIDs -> their resource class.
    """
    if not isinstance(allocation, Mapping) or not all(
            isinstance(k, str) for k in allocation):
        raise _mismatch(instance, f"expected nova's allocation, a mapping "
                                  f"of provider UUID to {{'resources': "
                                  f"...}}, got {shorten(repr(allocation))}")
    found = {}
    for uuid, entry in allocation.items():
        if uuid not in classes:
            continue
        resources = entry.get("resources") if isinstance(
            entry, Mapping) else None
        if not isinstance(resources, Mapping):
            raise _mismatch(instance, f"the allocation of provider {uuid} "
                                      f"has no 'resources' mapping: "
                                      f"{shorten(repr(entry))}")
        amount = resources.get(classes[uuid], 0)
        if type(amount) is not int or amount < 0:
            raise _mismatch(instance, f"provider {uuid} is allocated "
                                      f"{shorten(repr(amount))} of "
                                      f"{classes[uuid]}; expected a count")
        found[uuid] = amount
    return found


def groups(instance: str, provider_mapping: Any
           ) -> dict[str, tuple[str, ...]]:
    """The request groups' providers by requester id (lower case)."""
    if not isinstance(provider_mapping, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Sequence)
            and not isinstance(v, (str, bytes))
            and all(isinstance(u, str) for u in v)
            for k, v in provider_mapping.items()):
        raise _mismatch(instance, f"expected the request groups' provider "
                                  f"mapping, requester id -> provider "
                                  f"UUIDs, got "
                                  f"{shorten(repr(provider_mapping))}")
    return {k.lower(): tuple(v) for k, v in provider_mapping.items()}


def provider_of(instance: str, port: PortRequest,
                mapping: Mapping[str, tuple[str, ...]],
                classes: Mapping[str, str]) -> str:
    """The one provider of this host in the port's request group."""
    if port.port_id is None:
        raise _mismatch(instance, f"port {port.index} has no port_id, by "
                                  f"which nova's mapping names its group")
    group = mapping.get(port.port_id)
    if group is None:
        raise _mismatch(instance, f"port {port.port_id} has no request "
                                  f"group in the provider mapping")
    ours = sorted(set(u for u in group if u in classes))
    if len(ours) != 1:
        raise _mismatch(instance, f"the request group of port "
                                  f"{port.port_id} names "
                                  f"{len(ours)} PF providers of this host "
                                  f"({', '.join(ours) or 'none'} among "
                                  f"{', '.join(group) or 'none'}); "
                                  f"expected one")
    return ours[0]


def check_amounts(instance: str, per_port: Mapping[int, str],
                  allocated: Mapping[str, int]) -> None:
    """Every provider holds a unit for each port put on it."""
    for uuid in sorted(set(per_port.values())):
        wanted = sum(1 for u in per_port.values() if u == uuid)
        have = allocated.get(uuid, 0)
        if wanted > have:
            raise _mismatch(instance, f"{wanted} port(s) are mapped to "
                                      f"provider {uuid}, on which nova's "
                                      f"allocation holds {have} unit(s)")
