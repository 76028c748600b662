"""Which of an instance's macvtap ports nova's scheduler placed, and on
which providers: what nova wrote in their PCI requests, turned into
HostAgent.claim()'s Placement arguments.

Nova writes a request group's providers where it writes them for its
own PCI devices in Placement
(compute.utils.update_pci_request_with_placement_allocations):
``spec[0]['rp_uuids']``, comma separated, for the request group whose
requester id is ``<request_id>-0`` (pci_passthrough.nova.request_groups).
Read duck-typed and checked as hostile input, as
pci_passthrough.nova.ports reads nova's objects.
"""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.nova.ports import port_id_of_request, shown

#: Where nova writes the providers of a PCI request's request groups.
RP_UUIDS_KEY = "rp_uuids"
# More providers than any request group is fulfilled from.
_MAX_PROVIDERS = 16
# A UUID and its comma.
_UUID_CHARS = 37


def placed_on(pci_request: Any) -> tuple[str, tuple[str, ...]] | None:
    """The port's UUID and the providers Placement allocated its VF on;
    None when the scheduler did not place it.

    :raises InvalidPortRequest: naming the port: not UUIDs.
    """
    port_id = port_id_of_request(pci_request)
    specs = getattr(pci_request, "spec", None)
    if isinstance(specs, (str, bytes, Mapping)) or \
            not isinstance(specs, Sequence) or not specs or \
            not isinstance(specs[0], Mapping):
        return None
    value = specs[0].get(RP_UUIDS_KEY)
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str) or \
                len(value) > _UUID_CHARS * _MAX_PROVIDERS:
            raise ValueError(value)
        uuids = tuple(str(uuid.UUID(u.strip())) for u in value.split(","))
    except ValueError:
        raise exception.InvalidPortRequest(
            port=port_id, reason=f"its PCI request's {RP_UUIDS_KEY} "
                                 f"{shown(value)} is not a comma "
                                 f"separated list of UUIDs") from None
    return port_id, uuids


def placement_arguments(instance: Any, pci_requests: Sequence[Any],
                        allocations: Mapping[str, Any] | None
                        ) -> dict[str, Any]:
    """HostAgent.claim()'s Placement arguments from the providers nova
    wrote in the ports' PCI requests: none when no port was placed.

    :raises AllocationMismatch: a port was placed but nova gave no
        allocation.
    :raises InvalidPortRequest: naming the port.
    """
    placed = {}
    unplaced: list[str] = []
    for request in pci_requests:
        found = placed_on(request)
        if found is None:
            unplaced.append(port_id_of_request(request))
        else:
            placed[found[0]] = list(found[1])
    if not placed:
        return {}
    if allocations is None:
        raise exception.AllocationMismatch(
            instance=instance.uuid,
            reason=f"ports {', '.join(sorted(placed))} were placed by the "
                   f"scheduler, but nova gave no allocation")
    return {"allocation": allocations, "provider_mapping": placed,
            "unplaced": unplaced}
