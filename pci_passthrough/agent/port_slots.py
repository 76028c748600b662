"""Which slot of its instance each Neutron port takes.

A slot is the port index that names the port's network.  A port keeps
its slot for as long as it is claimed, so that detaching one port never
renames another's network; a new port takes the lowest slot free on the
instance when it is claimed, so that slots stay small and a port
attached after a detach takes the freed one.
"""

import dataclasses
from collections.abc import Mapping, Sequence

from pci_passthrough import exception
from pci_passthrough.model.claims import (
    Allocation,
    PortRequest,
    canonical_port_id,
)

# The highest slot a port request and a network name allow.
MAX_SLOT = 9999


def place(instance: str, ports: Sequence[PortRequest],
          held: Mapping[int, PortRequest],
          addresses: Mapping[int, str], *, keep: bool = False
          ) -> list[PortRequest]:
    """The requests with the slots their ports take.

    :param held: the instance's claimed ports, by slot.
    :param addresses: the devices they hold, by slot (for errors).
    :param keep: a request naming a port keeps the slot it gives (an
        incoming migration keeps the source's); by default it takes the
        slot its port holds, else the lowest free one.
    :raises InvalidPortRequest: a port asked for twice, or no slot left.
    :raises ClaimConflict: with ``keep``, a port held in another slot.
    """
    by_port = {req.port_id: slot for slot, req in held.items()
               if req.port_id is not None}
    taken = set(held) | {p.index for p in ports if p.port_id is None}
    seen: set[str] = set()
    placed = []
    for port in ports:
        if port.port_id is None:
            placed.append(port)
            continue
        if port.port_id in seen:
            raise exception.InvalidPortRequest(
                port=port.port_id, reason="the port is requested twice")
        seen.add(port.port_id)
        slot = by_port.get(port.port_id)
        if keep:
            if slot is not None and slot != port.index:
                raise exception.ClaimConflict(
                    instance=instance, port=port.port_id,
                    address=addresses[slot], field="slot", held=slot,
                    wanted=port.index)
            placed.append(port)
            continue
        if slot is None:
            slot = _lowest_free(port, taken)
            taken.add(slot)
        placed.append(dataclasses.replace(port, index=slot))
    return placed


def _lowest_free(port: PortRequest, taken: set[int]) -> int:
    for slot in range(MAX_SLOT + 1):
        if slot not in taken:
            return slot
    raise exception.InvalidPortRequest(
        port=port.port_id, reason=f"the instance has no free slot left "
                                  f"(at most {MAX_SLOT + 1} ports)")


def find(instance: str, allocs: Sequence[Allocation],
         port_id: str) -> Allocation | None:
    """The claim of the instance's port ``port_id``, if any.

    :raises InvalidPortRequest: ``port_id`` is not a UUID.
    """
    wanted = canonical_port_id(port_id)
    for alloc in sorted(allocs, key=lambda a: a.port_index):
        if alloc.instance_uuid == instance and alloc.port_id == wanted:
            return alloc
    return None

