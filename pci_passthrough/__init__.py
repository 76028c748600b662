"""SR-IOV network passthrough for nova-compute.

Special-attribute PCI flavors, crash-safe device claims, and per-instance
single-interface macvtap networks that let a guest live-migrate to a host
with other VFs without touching its domain XML.

The host-level API is :class:`HostAgent`; a port is asked for with
:class:`PortRequest`.
"""

from pci_passthrough.agent import HostAgent, PluggedPort, StartReport
from pci_passthrough.claims import Allocation, Explanation, PortRequest

__all__ = ["Allocation", "Explanation", "HostAgent", "PluggedPort",
           "PortRequest", "StartReport"]
