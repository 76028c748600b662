"""Immutable records of the SR-IOV devices a scan finds."""

import dataclasses
from typing import NamedTuple

DEV_TYPE_PF = "type-PF"
DEV_TYPE_VF = "type-VF"
DEV_TYPE_PCI = "type-PCI"
DEV_TYPES = (DEV_TYPE_PF, DEV_TYPE_VF, DEV_TYPE_PCI)


class PciDevice(NamedTuple):
    """One SR-IOV physical or virtual function as sysfs shows it.

    Identifiers are normalised: ``address`` is ``dddd:bb:ss.f`` in lower
    case (the domain may have 5 hex digits), ``vendor_id`` and
    ``product_id`` are four lower-case hex digits without ``0x``.  A value
    sysfs does not give, or gives in a form that cannot be trusted, is
    None.  A VF's MAC, link state and port attributes are not read (see
    pci_passthrough.discovery.sysfs_scan), so they are None.

    A named tuple rather than a dataclass: a scan makes one per VF, and a
    frozen dataclass costs as much to build as a file read.
    """

    address: str
    dev_type: str
    vendor_id: str
    product_id: str
    class_code: str | None = None
    numa_node: int | None = None
    driver: str | None = None
    iommu_group: int | None = None
    netdev: str | None = None
    mac: str | None = None
    link_state: str | None = None
    phys_port_name: str | None = None
    phys_switch_id: str | None = None
    # A VF's parent PF, its index among the PF's VFs and the PF's netdev.
    parent_addr: str | None = None
    vf_index: int | None = None
    pf_netdev: str | None = None
    # A PF's VF counts.
    totalvfs: int | None = None
    numvfs: int | None = None

    @property
    def is_pf(self) -> bool:
        return self.dev_type == DEV_TYPE_PF

    @property
    def is_vf(self) -> bool:
        return self.dev_type == DEV_TYPE_VF


@dataclasses.dataclass(frozen=True, slots=True)
class ScanIssue:
    """A problem the scan found: the path it is about (a file, a link or
    a device directory) and what was wrong and expected.  The device it
    concerns is not listed, unless the reason says it is kept."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything one pass over sysfs found, devices sorted by address."""

    sysfs_root: str
    devices: tuple[PciDevice, ...]
    errors: tuple[ScanIssue, ...] = ()

    def by_address(self) -> dict[str, PciDevice]:
        return {dev.address: dev for dev in self.devices}
