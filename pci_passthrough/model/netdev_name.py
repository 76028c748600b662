"""Linux interface names, checked as the kernel's dev_valid_name() does.

One rule for every place a netdev name enters the library: sysfs, the
``devname`` of a device_spec, and the networks handed to libvirt.
"""

import re

from pci_passthrough import exception

# IFNAMSIZ is 16 including the terminating NUL.  dev_valid_name() refuses
# '/', ':' and the kernel's isspace() (ASCII white space) and the names '.'
# and '..'.  Names are also limited to printable ASCII here: a name that
# is not text cannot be written into libvirt's XML or a log line, and no
# driver of an SR-IOV NIC names its netdevs otherwise.
_NETDEV = re.compile(r"[!-9;-~]{1,15}", re.ASCII)
EXPECTED = ("1 to 15 printable ASCII characters without '/', ':' or white "
            "space, and not '.' or '..'")


def is_valid_netdev_name(name: object) -> bool:
    """Whether the kernel would accept ``name`` as an interface name."""
    return (isinstance(name, str) and _NETDEV.fullmatch(name) is not None
            and "/" not in name and name not in (".", ".."))


def check_netdev(name: object, device: str = "-") -> str:
    """``name`` when the kernel would accept it as an interface name.

    :raises InvalidNetdevName: naming the device and what was expected.
    """
    if not is_valid_netdev_name(name):
        raise exception.InvalidNetdevName(name=name, device=device,
                                          reason="expected " + EXPECTED)
    assert isinstance(name, str)
    return name
