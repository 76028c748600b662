"""sysfs values in the formats the kernel writes them.

Documentation/ABI/testing/sysfs-bus-pci and the show() functions of
drivers/pci/pci-sysfs.c and drivers/pci/iov.c: ids ``0x%04x``, class
``0x%06x``, numa_node ``%d``, sriov_* counts ``%u``, sriov_vf_device
``%x``.  Each parser takes the bytes read and returns the value, or
raises ValueError whose message is what was expected.  Only these forms
pass: ASCII digits, no sign, blanks, '_' or leading zeros, in range (all
of which int() would take).  Hex ids are accepted with or without 0x and
in either case, as sysfs trees of test suites write them.
"""

import re
import sys

# MAX_NUMNODES is at most 1 << CONFIG_NODES_SHIFT, and NODES_SHIFT at
# most 10 on every architecture.
MAX_NUMA = 1024
MAX_U16 = 0xFFFF

# Device directories as the kernel names them: "%04x:%02x:%02x.%d".
ADDRESS = re.compile(
    r"(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]"
    r"\.[0-7]\Z")
ADDRESS_EXPECTED = "a PCI address dddd:bb:ss.f as the kernel names devices"
_DECIMAL = re.compile(rb"(0|[1-9][0-9]{0,9})\n?\Z")
_HEX4 = re.compile(rb"(?:0[xX])?([0-9a-fA-F]{4})\n?\Z")
_HEX6 = re.compile(rb"(?:0[xX])?([0-9a-fA-F]{6})\n?\Z")
_HEX_SHORT = re.compile(rb"(?:0[xX])?([0-9a-fA-F]{1,4})\n?\Z")
_MAC = re.compile(rb"([0-9a-fA-F]{2})(?::[0-9a-fA-F]{2}){5}\n?\Z")
_PORT_NAME = re.compile(rb"([!-~]{1,15})\n?\Z")
_SWITCH_ID = re.compile(rb"((?:[0-9a-f]{2}){1,32})\n?\Z")
_OPERSTATES = {s: s.decode() for s in (
    b"unknown", b"notpresent", b"down", b"lowerlayerdown", b"testing",
    b"dormant", b"up")}


def _decimal(data: bytes, maximum: int, expected: str) -> int:
    match = _DECIMAL.match(data)
    if match is None or int(match[1]) > maximum:
        raise ValueError(expected)
    return int(match[1])


def numa_node(data: bytes) -> int | None:
    """numa_node: None for -1 (no NUMA information)."""
    if data in (b"-1\n", b"-1"):
        return None
    return _decimal(data, MAX_NUMA - 1,
                    f"-1 or a NUMA node 0-{MAX_NUMA - 1} in decimal "
                    f"('%d\\n')")


def count(data: bytes) -> int:
    """sriov_totalvfs, sriov_numvfs, sriov_offset, sriov_stride."""
    return _decimal(data, MAX_U16, "a decimal count 0-65535 ('%u\\n')")


def vendor_id(data: bytes) -> str:
    match = _HEX4.match(data)
    if match is None or match[1] in (b"ffff", b"FFFF"):
        raise ValueError("a 16-bit hex vendor id other than ffff, such as "
                         "0x8086")
    return sys.intern(match[1].decode().lower())


def device_id(data: bytes) -> str:
    match = _HEX4.match(data)
    if match is None:
        raise ValueError("a 16-bit hex device id such as 0x10fb")
    return sys.intern(match[1].decode().lower())


def class_code(data: bytes) -> str:
    match = _HEX6.match(data)
    if match is None:
        raise ValueError("a 24-bit hex class code such as 0x020000")
    return sys.intern(match[1].decode().lower())


def vf_device_id(data: bytes) -> str:
    match = _HEX_SHORT.match(data)
    if match is None:
        raise ValueError("a 16-bit hex device id such as 10ed ('%x\\n')")
    return sys.intern(f"{int(match[1], 16):04x}")


def mac(data: bytes) -> str:
    match = _MAC.match(data)
    if match is None:
        raise ValueError("a 6-octet Ethernet MAC address such as "
                         "52:54:00:12:34:56")
    if int(match[1], 16) & 1:
        raise ValueError("a unicast MAC address (this one has the "
                         "multicast bit set)")
    text = data[:17].decode().lower()
    if text == "00:00:00:00:00:00":
        raise ValueError("a unicast MAC address, not all zeros")
    return text


def operstate(data: bytes) -> str:
    state = _OPERSTATES.get(data.removesuffix(b"\n"))
    if state is None:
        raise ValueError("one of " + ", ".join(_OPERSTATES.values()))
    return state


def port_name(data: bytes) -> str:
    match = _PORT_NAME.match(data)
    if match is None:
        raise ValueError("1 to 15 printable ASCII characters")
    return sys.intern(match[1].decode())


def switch_id(data: bytes) -> str:
    match = _SWITCH_ID.match(data)
    if match is None:
        raise ValueError("an even number (up to 64) of lower-case hex "
                         "digits")
    return sys.intern(match[1].decode())


def canonical_index(text: str) -> int | None:
    """A canonical decimal (virtfnN, iommu group), or None."""
    if (not text or len(text) > 10 or not text.isascii()
            or not text.isdigit() or (text[0] == "0" and text != "0")):
        return None
    return int(text)
