"""A VF's netdev as sysfs names it now, read from the VF's PCI address.

A netdev's name is not a VF's identity: udev, an operator or a driver
reload may rename it (two VFs' names swapped between physical networks)
after the last scan.  What plugs a VF, or checks what a network holds,
reads <root>/bus/pci/devices/<address>/net/ at the moment it uses the
name, and refuses when that does not name exactly one netdev.

The tree is read as the scan reads it, as hostile input: the bus entry
must resolve inside <root>/devices to a directory named after the
address; net/ must be a real directory (not a link) holding exactly one
entry, a real directory whose name the kernel would accept.  No other
link is followed and no file is opened.
"""

import dataclasses
import os
import stat

from pci_passthrough.discovery._values import ADDRESS, ADDRESS_EXPECTED
from pci_passthrough.model.netdev_name import EXPECTED as NETDEV_EXPECTED
from pci_passthrough.model.netdev_name import is_valid_netdev_name

# A listing longer than this is not a VF's net/ directory: the entries
# shown in a refusal stay readable.
_SHOWN = 4


@dataclasses.dataclass(frozen=True, slots=True)
class LiveNetdev:
    """What a device's net/ directory held when it was read."""

    address: str
    #: The one netdev found; None when there was not exactly one valid.
    netdev: str | None
    #: Why ``netdev`` is None: what was found instead, in words.
    problem: str | None = None


def live_netdev(sysfs_root: str | os.PathLike[str],
                address: str) -> LiveNetdev:
    """The netdev ``<root>/bus/pci/devices/<address>/net/`` holds now."""
    if not isinstance(address, str) or not ADDRESS.match(address):
        return LiveNetdev(str(address), None,
                          f"{_shown(address)} is not {ADDRESS_EXPECTED}")
    root = os.path.realpath(os.fspath(sysfs_root))
    try:
        net = _device_dir(root, address) + "/net"
        _check_directory(net)
        with os.scandir(net) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False))
                             for e in it)
        return LiveNetdev(address, _one_netdev(net, entries))
    except _Refused as refused:
        return LiveNetdev(address, None, str(refused))
    except OSError as exc:
        return LiveNetdev(address, None,
                          f"{exc.filename} cannot be read ({exc.strerror})")


class _Refused(Exception):
    """What was found instead of one netdev."""


def _device_dir(root: str, address: str) -> str:
    """The device's directory: where its bus entry leads, never outside
    <root>/devices."""
    link = f"{root}/bus/pci/devices/{address}"
    devices = f"{root}/devices/"
    try:
        mode = os.lstat(link).st_mode
    except FileNotFoundError:
        raise _Refused(f"{link} is missing: the device is gone") from None
    if not stat.S_ISLNK(mode):
        raise _Refused(f"{link} is not a symbolic link; expected a link "
                       f"to the device's directory under {devices}")
    path = os.path.realpath(link, strict=True)
    if not path.startswith(devices) or path.rpartition("/")[2] != address:
        raise _Refused(f"{link} resolves to {_shown(path)}; expected the "
                       f"directory {address} under {devices}; not "
                       f"followed")
    return path


def _check_directory(net: str) -> None:
    try:
        mode = os.lstat(net).st_mode
    except FileNotFoundError:
        raise _Refused(f"{net} is missing: no netdev (no driver, or "
                       f"vfio-pci)") from None
    if stat.S_ISLNK(mode):
        raise _Refused(f"{net} is a symbolic link; expected a directory; "
                       f"not followed")
    if not stat.S_ISDIR(mode):
        raise _Refused(f"{net} is not a directory")


def _one_netdev(net: str, entries: list[tuple[str, bool]]) -> str:
    if not entries:
        raise _Refused(f"{net} is empty: no netdev (being renamed, or its "
                       f"driver is unbinding)")
    if len(entries) > 1:
        shown = ", ".join(_shown(n) for n, _ in entries[:_SHOWN])
        more = ", ..." if len(entries) > _SHOWN else ""
        raise _Refused(f"{net} holds {len(entries)} entries ({shown}"
                       f"{more}); expected one netdev")
    ((name, is_dir),) = entries
    if not is_valid_netdev_name(name):
        raise _Refused(f"{net} holds {_shown(name)}, not a netdev name: "
                       f"expected {NETDEV_EXPECTED}")
    if not is_dir:
        raise _Refused(f"{net}/{name} is not a directory; expected the "
                       f"netdev's directory")
    return name


def _shown(name: object) -> str:
    """A name from the tree as it can be printed and logged."""
    text = ascii(name) if isinstance(name, str) else repr(name)
    return text if len(text) <= 40 else text[:37] + "..."
