"""Nova's ``[pci] device_spec``: which devices may be assigned, and their
tags.

Each value of the option is a JSON object or a JSON list of objects.  In an
object, vendor_id, product_id, address (glob string or dict of regular
expressions) and devname select devices; every other key is a tag.  A spec
whose exact address or devname names a PF also covers that PF's VFs.  The
first spec that matches a device decides, and its tags are the device's.
"""

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.device import PciDevice
from pci_passthrough.pci_address import (
    AddressGlob,
    AddressRegex,
    AddressSyntaxError,
)

_ID = re.compile(r"(?:0x)?([0-9a-fA-F]{1,4})\Z")
# Tags whose values Nova reads as booleans (nova/pci/devspec.py).
BOOLEAN_TAGS = frozenset(
    {"managed", "live_migratable", "trusted", "remote_managed"})
_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})
# Linux IFNAMSIZ is 16 with the terminating NUL.
_MAX_DEVNAME = 15
_SELECTORS = frozenset({"vendor_id", "product_id", "address", "devname"})


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One parsed spec object."""

    vendor_id: str | None
    product_id: str | None
    address: AddressGlob | AddressRegex | None
    devname: str | None
    tags: Mapping[str, str]
    # The exact address a glob names; a PF there covers its VFs.
    exact_address: str | None = None

    def match(self, dev: PciDevice) -> bool:
        if self.vendor_id is not None and dev.vendor_id != self.vendor_id:
            return False
        if (self.product_id is not None
                and dev.product_id != self.product_id):
            return False
        if self.devname is not None:
            return self.devname in (dev.netdev, dev.pf_netdev)
        if self.address is None:
            return True
        if self.address.match(dev.address):
            return True
        # A spec naming a PF's address also covers the PF's VFs.
        return (self.exact_address is not None
                and dev.parent_addr == self.exact_address)


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceSpecList:
    """The ordered specs of the option; the first match decides."""

    specs: tuple[DeviceSpec, ...]

    def __len__(self) -> int:
        return len(self.specs)

    def match(self, dev: PciDevice) -> Mapping[str, str] | None:
        """The tags of the first spec matching ``dev``; None when no spec
        matches (the device is not assignable)."""
        for spec in self.specs:
            if spec.match(dev):
                return spec.tags
        return None

    @property
    def tag_names(self) -> frozenset[str]:
        return frozenset(k for spec in self.specs for k in spec.tags)


def parse_device_specs(values: Sequence[str], *,
                       option: str = "device_spec",
                       group: str = "pci_passthrough") -> DeviceSpecList:
    """Parse every value of the option; the first invalid one raises.

    :raises InvalidDeviceSpec: naming the option, the entry (its position
        and text) and what was expected.
    """
    specs: list[DeviceSpec] = []
    for position, text in enumerate(values, start=1):
        entry = f"#{position} {_shorten(text)}"

        def fail(reason: str, entry: str = entry) -> exception.ConfigError:
            return exception.InvalidDeviceSpec(
                group=group, option=option, entry=entry, reason=reason)

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise fail(f"not valid JSON ({exc}); expected a JSON object "
                       f"or a list of objects") from None
        objects = data if isinstance(data, list) else [data]
        for n, obj in enumerate(objects, start=1):
            where = entry if not isinstance(data, list) else \
                f"{entry}, object {n}"
            if not isinstance(obj, dict):
                raise fail(f"{json.dumps(obj)} is not a JSON object; "
                           f"expected an object such as "
                           f'{{"vendor_id": "8086"}}', where)
            try:
                specs.append(_parse_object(obj))
            except ValueError as exc:
                raise fail(str(exc), where) from None
    return DeviceSpecList(tuple(specs))


def _parse_object(obj: Mapping[str, Any]) -> DeviceSpec:
    if "address" in obj and "devname" in obj:
        raise ValueError("address and devname cannot be combined; use one "
                         "of them")
    address: AddressGlob | AddressRegex | None = None
    exact = None
    raw_address = obj.get("address")
    if isinstance(raw_address, str):
        try:
            glob = AddressGlob.parse(raw_address)
        except AddressSyntaxError as exc:
            raise ValueError(f"invalid address: {exc}") from None
        address, exact = glob, glob.exact()
    elif isinstance(raw_address, dict):
        try:
            address = AddressRegex.parse(raw_address)
        except AddressSyntaxError as exc:
            raise ValueError(f"invalid address: {exc}") from None
    elif raw_address is not None:
        raise ValueError("address must be a string such as "
                         "\"0000:0a:00.*\" or an object of regular "
                         "expressions such as {\"bus\": \"0a\"}")
    devname = obj.get("devname")
    if devname is not None and (
            not isinstance(devname, str) or not 0 < len(devname)
            <= _MAX_DEVNAME or "/" in devname or devname.strip() != devname):
        raise ValueError(f"devname {devname!r} is not a network interface "
                         f"name (1 to {_MAX_DEVNAME} characters, no '/' or "
                         f"spaces)")
    tags = {}
    for key, value in obj.items():
        if key in _SELECTORS:
            continue
        tags[key] = tag_value(key, value)
    return DeviceSpec(
        vendor_id=_id(obj, "vendor_id"), product_id=_id(obj, "product_id"),
        address=address, devname=devname, tags=tags, exact_address=exact)


def _id(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "*":
        return None
    match = _ID.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{key} {value!r} is not a 4-digit hex id; "
                         f"expected hex up to FFFF (such as \"8086\") or "
                         f"\"*\"")
    return f"{int(match.group(1), 16):04x}"


def tag_value(key: str, value: Any) -> str:
    """A tag's value as text; boolean-like tags normalised."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise ValueError(f"tag {key!r} has the value {json.dumps(value)}; "
                         f"tags are strings, numbers or booleans")
    if key in BOOLEAN_TAGS:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise ValueError(f"tag {key!r} must be a boolean (yes/no, "
                         f"true/false, 1/0), not {text!r}")
    return text


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
