"""Reading one SR-IOV PF: its attributes, driver and IOMMU group links,
its own netdev, then its VFs (pci_passthrough.discovery._vfs).

What a VF shares with its PF by the kernel's construction (the vendor,
the class) is read here once per PF.  The MAC, operstate and port
attributes of the PF's netdev are attributes nothing decides on: one
that cannot be read becomes None with the PF kept.
"""

import os
import re
import sys

from pci_passthrough.discovery import _values as values
from pci_passthrough.discovery import sysfs_files
from pci_passthrough.discovery._state import BAD, PfFound, ScanState
from pci_passthrough.discovery._vfs import scan_vfs
from pci_passthrough.discovery.sysfs_files import LinkProblem
from pci_passthrough.model.device import DEV_TYPE_PF, PciDevice
from pci_passthrough.model.netdev_name import EXPECTED as NETDEV_EXPECTED
from pci_passthrough.model.netdev_name import is_valid_netdev_name

# Representor netdevs of a switchdev PF: pf0vf3, pf0, c1pf0vf3, pf0sf8.
_REPRESENTOR = re.compile(r"(c\d+)?pf\d+(vf\d+|sf\d+)?\Z", re.ASCII)
_UPLINK = re.compile(r"p\d+\Z", re.ASCII)


def scan_pf(scan: ScanState, address: str, path: str) -> None:
    """Read the PF at ``path`` (bus address ``address``) and its VFs into
    ``scan``; a device with sriov_totalvfs 0 is left out."""
    try:
        with os.scandir(path) as it:
            entries = {e.name: e for e in it}
    except OSError as exc:
        scan.problem(path, f"cannot be listed ({exc.strerror}); expected "
                           f"the PF's directory")
        return
    get = entries.get
    totalvfs = scan.value(
        path + "/sriov_totalvfs", get("sriov_totalvfs"), values.count,
        True, "the PF is kept, its sriov_totalvfs unknown")
    if totalvfs == 0:
        return  # SR-IOV capable in name only: not listed
    pf = PfFound(address)
    scan.pfs.append(pf)
    vendor = scan.value(path + "/vendor", get("vendor"), values.vendor_id,
                        True)
    product = scan.value(path + "/device", get("device"),
                         values.device_id, True)
    class_code = scan.value(path + "/class", get("class"),
                            values.class_code, True)
    numa = scan.value(path + "/numa_node", get("numa_node"),
                      values.numa_node, False)
    rel = path[len(scan.base) + 1:]
    up = "../" * (rel.count("/") + 1)
    drivers: dict[str, str] = {}
    driver = group = None
    links_ok = True
    try:
        driver = sysfs_files.driver_name(
            path + "/driver", up + "bus/pci/drivers/", drivers)
    except LinkProblem as problem:
        scan.problem(problem.path, problem.reason)
        links_ok = False
    try:
        group = sysfs_files.iommu_group(path + "/iommu_group",
                                        up + "kernel/iommu_groups/")
    except LinkProblem as problem:
        scan.problem(problem.path, problem.reason)
        links_ok = False
    netdev = _pf_netdev(scan, path, get("net"))
    pf.listed = (links_ok and netdev is not BAD and BAD not in (
        vendor, product, class_code, numa))
    kept = "the PF is kept"
    numvfs = scan.value(path + "/sriov_numvfs", get("sriov_numvfs"),
                        values.count, True,
                        kept + ", its sriov_numvfs unknown")
    if (isinstance(numvfs, int) and isinstance(totalvfs, int)
            and numvfs > totalvfs):
        scan.problem(path + "/sriov_numvfs",
                     f"{numvfs} VFs enabled; expected at most "
                     f"sriov_totalvfs {totalvfs}; {kept}, its "
                     f"sriov_numvfs unknown")
        numvfs = BAD
    mac = state = port_name = switch_id = None
    if isinstance(netdev, str):
        net = f"{path}/net/{netdev}/"
        consequence = kept + ", this attribute unknown"
        mac = scan.optional_value(net + "address", values.mac, consequence)
        state = scan.optional_value(net + "operstate", values.operstate,
                                    consequence)
        port_name = scan.optional_value(net + "phys_port_name",
                                        values.port_name, consequence)
        switch_id = scan.optional_value(net + "phys_switch_id",
                                        values.switch_id, consequence)
    if pf.listed:
        assert isinstance(vendor, str) and isinstance(product, str)
        assert isinstance(class_code, str)
        assert numa is None or isinstance(numa, int)
        assert netdev is None or isinstance(netdev, str)
        pf.vendor, pf.class_code, pf.netdev = vendor, class_code, netdev
        pf.record = PciDevice._make((
            address, DEV_TYPE_PF, vendor, product, class_code, numa,
            driver, group, netdev, mac, state, port_name, switch_id,
            None, None, None,
            totalvfs if isinstance(totalvfs, int) else None,
            numvfs if isinstance(numvfs, int) else None))
    scan_vfs(scan, pf, path, rel, up, entries, drivers)


def _pf_netdev(scan: ScanState, path: str,
              entry: os.DirEntry[str] | None) -> str | object | None:
    """The PF's own netdev, from its net/ directory.

    Several netdevs under one net/ happen in switchdev mode: a PF's
    uplink plus its VF representors.  The uplink is the one whose
    phys_port_name is ``p<n>``; failing that, the one that is not a
    representor (representors are named by phys_port_name
    pfN/pfNvfM).  Ties go to the smallest name, never to listing
    order.
    """
    if entry is None:
        return None
    net = path + "/net"
    if not entry.is_dir(follow_symlinks=False):
        scan.problem(net, f"{sysfs_files.entry_kind(entry)}; expected a "
                          f"directory of netdevs")
        return BAD
    try:
        with os.scandir(net) as it:
            listed = [(e.name, e.is_dir(follow_symlinks=False))
                      for e in it]
    except OSError as exc:
        scan.problem(net, f"cannot be listed ({exc.strerror}); expected "
                          f"a directory of netdevs")
        return BAD
    names = []
    trusted = True
    for name, is_dir in sorted(listed):
        scan.pf_netdevs.add(name)
        if not is_valid_netdev_name(name):
            scan.problem(f"{net}/{name}", f"invalid netdev name "
                                          f"{os.fsencode(name)!r}; "
                                          f"expected {NETDEV_EXPECTED}")
            trusted = False
        elif not is_dir:
            scan.problem(f"{net}/{name}", "not a directory; expected "
                                          "the netdev's directory")
            trusted = False
        else:
            names.append(name)
    if not trusted:
        return BAD
    if len(names) <= 1:
        return sys.intern(names[0]) if names else None
    uplinks, others = [], []
    for name in names:
        port = scan.optional_value(
            f"{net}/{name}/phys_port_name", values.port_name,
            "taken as unknown when choosing the PF's netdev")
        if port is not None and _UPLINK.match(port):
            uplinks.append(name)
        elif port is None or not _REPRESENTOR.match(port):
            others.append(name)
    return sys.intern((uplinks or others or names)[0])
