"""The netdevs of the VFs a scan found, from <root>/class/net: one
readlink per netdev rather than a listing of each VF's net/ directory
(five system calls)."""

import errno
import os
import sys

from pci_passthrough.discovery import sysfs_files
from pci_passthrough.discovery._state import ScanState
from pci_passthrough.model.netdev_name import EXPECTED as NETDEV_EXPECTED
from pci_passthrough.model.netdev_name import is_valid_netdev_name


def vf_netdevs(scan: ScanState) -> tuple[dict[str, str], set[str]]:
    """VF address -> netdev, from <root>/class/net, and the VFs that
    a netdev link makes unlistable."""
    netdevs: dict[str, str] = {}
    refused: set[str] = set()
    if not scan.pfs:
        return netdevs, refused
    net = scan.base + "/class/net"
    try:
        real = os.path.realpath(net, strict=True)
    except FileNotFoundError:
        return netdevs, refused
    except OSError as exc:
        scan.problem(net, f"cannot be resolved ({exc.strerror}); "
                          f"expected the directory of netdevs; VFs are "
                          f"listed without netdevs")
        return netdevs, refused
    if real != net:
        scan.problem(net, f"resolves to {sysfs_files.printable(real)}; "
                          f"expected a directory, not a link; not "
                          f"followed; VFs are listed without netdevs")
        return netdevs, refused
    try:
        with os.scandir(net) as it:
            names = [e.name for e in it]
    except OSError as exc:
        scan.problem(net, f"cannot be listed ({exc.strerror}); expected "
                          f"the directory of netdevs; VFs are listed "
                          f"without netdevs")
        return netdevs, refused
    skip = scan.pf_netdevs
    vf_parents = scan.vf_parents
    readlink = os.readlink
    for name in names:
        if name in skip:
            continue
        link = f"{net}/{name}"
        try:
            text = readlink(link)
        except OSError as exc:
            expected = f"expected ../../devices/<device>/net/{name}"
            if exc.errno == errno.EINVAL:
                scan.problem(link, f"{sysfs_files.path_kind(link)}; "
                                   f"{expected}")
            elif exc.errno != errno.ENOENT:  # renamed or gone meanwhile
                scan.problem(link, f"cannot be read ({exc.strerror}); "
                                   f"{expected}")
            continue
        head, sep, tail = text.rpartition("/net/")
        expected = "expected ../../devices/<device>/net/"
        if (not sep or tail != name
                or not head.startswith("../../devices/")):
            scan.problem(link, f"-> {text!r}; {expected}{name}; not "
                               f"followed")
            continue
        device = head[6:]
        parent, _, address = device.rpartition("/")
        if vf_parents.get(address) != parent:
            if "/." in device or "//" in device:
                scan.problem(link, f"-> {text!r}; {expected}{name} "
                                   f"without '.' or '..' after the "
                                   f"leading ../")
            continue  # not a VF of this scan: a virtual or other device
        if not is_valid_netdev_name(name):
            scan.problem(link, f"invalid netdev name "
                               f"{os.fsencode(name)!r} for VF {address}; "
                               f"expected {NETDEV_EXPECTED}; the VF is "
                               f"not listed")
            refused.add(address)
            continue
        old = netdevs.get(address)
        if old is None or name < old:
            netdevs[address] = sys.intern(name)
    return netdevs, refused
