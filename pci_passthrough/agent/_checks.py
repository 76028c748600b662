"""Checks of what API callers pass in, made before anything is looked
up, and how their values are shown in the errors."""

from collections.abc import Collection, Sequence

from pci_passthrough import exception
from pci_passthrough.model.claims import PortRequest


def check_request(ports: object, numa_cells: object) -> None:
    """A claim's ports are PortRequests, its NUMA cells node numbers.

    :raises InvalidPortRequest:
    """
    if isinstance(ports, (str, bytes)) or not isinstance(ports, Sequence) \
            or not all(isinstance(p, PortRequest) for p in ports):
        raise exception.InvalidPortRequest(
            port="-", reason=f"expected a sequence of PortRequest, got "
                             f"{shorten(repr(ports))}")
    if numa_cells is not None and (
            isinstance(numa_cells, (str, bytes))
            or not isinstance(numa_cells, Collection)
            or not all(isinstance(c, int) and not isinstance(c, bool)
                       and c >= 0 for c in numa_cells)):
        raise exception.InvalidPortRequest(
            port="-", reason=f"numa_cells {shorten(repr(numa_cells))} is "
                             f"not a collection of NUMA node numbers")


def shown(value: object) -> str:
    """A request field's value in an error."""
    return "none" if value is None else repr(value)


def shorten(text: str, limit: int = 60) -> str:
    """``text``, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
