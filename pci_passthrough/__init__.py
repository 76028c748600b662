"""SR-IOV network passthrough for nova-compute.

Special-attribute PCI flavors, crash-safe device claims, and per-instance
single-interface macvtap networks that let a guest live-migrate to a host
with other VFs without touching its domain XML.

The host-level API is :class:`HostAgent`; a port is asked for with
:class:`PortRequest`.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pci_passthrough.agent import HostAgent, PluggedPort, StartReport
    from pci_passthrough.model.claims import (
        Allocation,
        Explanation,
        PortRequest,
    )

# Loaded on first use: importing any module of the package (the
# pci-passthrough command's scan, say) would otherwise load the agent,
# its network drivers, stevedore, lxml and oslo.log.
_EXPORTS = {
    "HostAgent": "pci_passthrough.agent",
    "PluggedPort": "pci_passthrough.agent",
    "StartReport": "pci_passthrough.agent",
    "Allocation": "pci_passthrough.model.claims",
    "Explanation": "pci_passthrough.model.claims",
    "PortRequest": "pci_passthrough.model.claims",
}

__all__ = ["Allocation", "Explanation", "HostAgent", "PluggedPort",
           "PortRequest", "StartReport"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(
            f"module 'pci_passthrough' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
