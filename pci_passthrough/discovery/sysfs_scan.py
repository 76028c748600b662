"""One pass over sysfs: every SR-IOV PF and VF of the host, read as
hostile input.

The scan lists <root>/bus/pci/devices once, in address order.  A PF is a
device with sriov_totalvfs > 0; its VFs are found through its virtfnN
links, so the bus entries of VFs are never probed.  What a VF shares with
its PF by the kernel's construction (drivers/pci/iov.c: the vendor, the
class, the device id in the PF's sriov_vf_device) is read once per PF;
what may differ (numa_node, driver, iommu_group) is read per VF.  A VF's
netdev is found through <root>/class/net, one readlink per netdev, rather
than by listing the VF's net/ directory (five system calls).

sysfs is read as hostile input:

- a file is opened only after its directory entry (scandir's d_type, or
  an lstat) says it is a regular file, then with O_NONBLOCK|O_NOFOLLOW,
  and read once, at most sysfs_files.MAX_READ bytes: a FIFO, socket or
  device node is never opened, a link never followed, and nothing
  blocks;
- the scan never leaves the root: a bus entry is resolved with realpath
  and must land in <root>/devices; every other link must have the exact
  relative form the kernel writes (virtfnN -> ../<address>, driver ->
  ../(up to the root)/bus/pci/drivers/<name>, ...) and is never followed;
  a directory is entered only when its entry says it is a real directory;
- values are parsed in the formats the kernel writes them
  (pci_passthrough.discovery._values): ASCII digits, no sign, no blanks, no
  '_', no leading zeros, in range;
- a VF is listed only when its virtfnN link points at the address the
  kernel computes from the PF's sriov_offset and sriov_stride, no other
  link reaches it, and its PF is listed.

Every problem is one entry of ScanResult.errors naming the path and what
was expected, and the device it concerns is not listed; the exceptions
are attributes nothing decides on (sriov_totalvfs, sriov_numvfs, and the
MAC, operstate and port attributes of a PF's netdev), which become None
with the device kept.  A netdev name the kernel would refuse
(netdev_name.is_valid_netdev_name) makes its device unlisted.

Not read at all: a VF's MAC, operstate and port attributes (nothing uses
them, and they would double the system calls per VF), its physfn link
(the computed address says which PF it belongs to) and the bus entries
of VFs found through their PF.  What this leaves undetected needs a tree
the kernel cannot make: a PF sitting at the address the kernel computes
for another PF's VF is taken for that VF; a class/net link pointed at
the netdev directory of a device that is not an SR-IOV VF leaves the VF
without netdev.  A file swapped for a device node between its lstat and
its open (by someone writing to sysfs meanwhile) would be opened; a FIFO
or link swapped in cannot block or be followed (O_NONBLOCK|O_NOFOLLOW).

Cost, with the checks (tools/bench/bench_scan.py): about 8 file system
calls per VF (a readlink of virtfnN, driver, iommu_group and the class/net
entry; an lstat, open, read and close of numa_node), within 1.5 times a
bare loop making the same calls.

This module walks the bus and makes the records; the PFs are read by
pci_passthrough.discovery._pf, their VFs by ._vfs, the VFs' netdevs by
._vf_netdevs, each file and link by .sysfs_files, into the one scan's
._state.
"""


import logging
import os

from pci_passthrough import exception
from pci_passthrough.discovery import _values as values
from pci_passthrough.discovery import sysfs_files
from pci_passthrough.discovery._pf import scan_pf
from pci_passthrough.discovery._state import ScanState
from pci_passthrough.discovery._vf_netdevs import vf_netdevs
from pci_passthrough.model.device import (
    DEV_TYPE_VF,
    PciDevice,
    ScanIssue,
    ScanResult,
)

LOG = logging.getLogger(__name__)

__all__ = ["ScanIssue", "ScanResult", "scan"]


def _scan_bus(scan: ScanState) -> tuple[PciDevice, ...]:
    """The devices under <root>/bus/pci/devices, each PF read with its
    VFs, as records."""
    bus = scan.base + "/bus/pci/devices"
    try:
        real = os.path.realpath(bus, strict=True)
    except OSError as exc:
        raise exception.SysfsRootError(
            path=scan.root,
            reason=f"{bus} cannot be listed ({exc.strerror}); expected "
                   f"a sysfs tree with bus/pci/devices") from exc
    if real != bus:
        raise exception.SysfsRootError(
            path=scan.root,
            reason=f"{bus} resolves to {real}; expected a directory, "
                   f"not a link")
    try:
        with os.scandir(bus) as it:
            links = {e.name: e.is_symlink() for e in it}
    except OSError as exc:
        raise exception.SysfsRootError(
            path=scan.root,
            reason=f"{bus} cannot be listed ({exc.strerror}); expected "
                   f"a sysfs tree with bus/pci/devices") from exc
    # Address order: canonical addresses of one length sort as text, a
    # longer domain is a larger one (two sorts in C, no key parsing).
    names = sorted(links)
    names.sort(key=len)
    devices = scan.base + "/devices/"
    vf_links = scan.vf_links
    for name in names:
        if name in vf_links:
            continue  # a VF, found through its PF
        link = f"{bus}/{name}"
        if not values.ADDRESS.match(name):
            scan.problem(link, f"unexpected entry; expected "
                               f"{values.ADDRESS_EXPECTED}")
            continue
        if not links[name]:
            scan.problem(link, f"{sysfs_files.path_kind(link)}; expected a "
                               f"symbolic link to the device's "
                               f"directory under {devices}")
            continue
        try:
            path = os.path.realpath(link, strict=True)
        except OSError as exc:
            scan.problem(link, f"cannot be resolved ({exc.strerror}); "
                               f"expected a link to the device's "
                               f"directory under {devices}")
            continue
        if not path.startswith(devices):
            scan.problem(link, f"resolves to {sysfs_files.printable(path)}, "
                               f"outside {devices}; expected a link "
                               f"into it; not followed")
            continue
        if path.rpartition("/")[2] != name:
            scan.problem(link, f"resolves to {sysfs_files.printable(path)}; "
                               f"expected a directory named {name}")
            continue
        try:
            os.lstat(path + "/sriov_totalvfs")
        except FileNotFoundError:
            continue  # not an SR-IOV PF
        except OSError as exc:
            scan.problem(path, f"cannot be read ({exc.strerror}); "
                               f"expected a device directory")
            continue
        scan_pf(scan, name, path)
    netdevs, refused = vf_netdevs(scan)
    return _records(scan, netdevs, refused)


def _records(scan: ScanState, netdevs: dict[str, str],
             refused: set[str]) -> tuple[PciDevice, ...]:
    """The records of what ``scan`` found, by address: a VF with
    ``netdevs``' netdev, none of those ``refused``."""
    make = PciDevice._make
    pf_addresses = {pf.address for pf in scan.pfs}
    dropped = refused | scan.duplicates
    out = []
    for pf in scan.pfs:
        if pf.record is not None:
            out.append(pf.record)
        vendor, product, class_code = (pf.vendor, pf.vf_product,
                                       pf.class_code)
        parent, pf_netdev, listed = pf.address, pf.netdev, pf.vfs_listed
        for address, numa, driver, group, index, link in pf.vfs:
            if address in dropped:
                continue
            if address in pf_addresses:
                scan.problem(link, f"points at {address}, a PF; "
                                   f"expected a VF")
                continue
            netdev = netdevs.get(address)
            if netdev is not None and driver is None:
                scan.problem(link, f"VF {address} has netdev {netdev} "
                                   f"but no driver; expected none "
                                   f"without a driver; not listed")
                continue
            if listed:
                out.append(make((
                    address, DEV_TYPE_VF, vendor, product, class_code,
                    numa, driver, group, netdev, None, None, None, None,
                    parent, index, pf_netdev, None, None)))
    # Canonical addresses of one length compare as text, and a record
    # starts with its (unique) address; a longer domain is a larger.
    if len({len(pf.address) for pf in scan.pfs}) == 1:
        out.sort()
    else:
        out.sort(key=_address_order)
    return tuple(out)

def _address_order(dev: PciDevice) -> tuple[int, str]:
    return len(dev[0]), dev[0]

def scan(sysfs_root: str | os.PathLike[str]) -> ScanResult:
    """Scan ``sysfs_root`` for SR-IOV PFs and VFs.

    Never blocks and never reads outside the root.  The result lists the
    well-formed devices, sorted by address, and one ScanIssue per problem
    found (the path, what was wrong and what was expected); a device with
    a problem is not listed unless the issue says it is kept.

    :raises SysfsRootError: the root or its bus/pci/devices cannot be read,
        or bus/pci/devices is a link.
    """
    root = os.path.realpath(os.fspath(sysfs_root))
    if not os.path.isdir(root):
        raise exception.SysfsRootError(
            path=os.fspath(sysfs_root),
            reason="no such directory; expected the root of a sysfs tree "
                   "such as /sys")
    state = ScanState(root, LOG)
    devices = _scan_bus(state)
    LOG.debug("Scanned %s: %d SR-IOV devices, %d problems", root,
              len(devices), len(state.errors))
    return ScanResult(sysfs_root=root, devices=devices,
                      errors=tuple(state.errors))
