"""Nova's ``[pci] device_spec``: which devices may be assigned, and their
tags.

Each value of the option is a JSON object or a JSON list of objects.  In an
object, vendor_id, product_id, address (glob string or dict of regular
expressions) and devname select devices; every other key is a tag.  A spec
whose exact address or devname names a PF also covers that PF's VFs.  The
first spec that matches a device decides, and its tags are the device's.

Entries are hostile input: each is read through
:func:`pci_passthrough.config._json.load` (bounded, no NaN, no duplicate
keys), address regexes are matched in linear time
(:mod:`pci_passthrough.model._address_regex`), devnames follow the
kernel's rule (:mod:`pci_passthrough.model.netdev_name`), and a key with a
fixed meaning elsewhere (:data:`RESERVED_KEYS`) is never a tag.  Every
refusal is one InvalidDeviceSpec naming the option, the entry and what
was expected.
"""

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.config import _json as config_json
from pci_passthrough.model import netdev_name, placement_names
from pci_passthrough.model.device import PciDevice
from pci_passthrough.model.pci_address import (
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
_SELECTORS = frozenset({"vendor_id", "product_id", "address", "devname"})
#: Keys with a fixed meaning in a device_spec or a flavor (or a device
#: attribute a flavor compares): never a tag, never a special attribute.
#: A tag named so would be shadowed by the real attribute, or could never
#: be asked for, so explain and claim would disagree about it.
RESERVED_KEYS = frozenset({
    *_SELECTORS, "name", "device_type", "dev_type", "numa_policy",
    "numa_node"})
#: What a tag (and a special attribute) may be called: it is written in
#: flavors and in the comma-separated option special_attributes.
TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
TAG_KEY_EXPECTED = ("a letter or '_' then up to 63 letters, digits, '_', "
                    "'.' or '-'")
#: Longest tag value, in characters.
MAX_TAG_VALUE = 255
#: Most spec objects the option may hold, all values together: every
#: device is compared with each spec at every scan.
MAX_SPECS = 1024


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
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise exception.InvalidDeviceSpec(
            group=group, option=option, entry="-",
            reason=f"expected a list of JSON texts, not "
                   f"{type(values).__name__}")
    specs: list[DeviceSpec] = []
    for position, text in enumerate(values, start=1):
        entry = f"#{position} " + (config_json.shorten(text)
                                   if isinstance(text, str) else "-")

        def fail(reason: str, entry: str = entry) -> exception.ConfigError:
            return exception.InvalidDeviceSpec(
                group=group, option=option, entry=entry, reason=reason)

        try:
            data = config_json.load(text)
        except config_json.EntryError as exc:
            raise fail(f"{exc}; expected a JSON object or a list of "
                       f"objects") from None
        objects = data if isinstance(data, list) else [data]
        if len(specs) + len(objects) > MAX_SPECS:
            raise fail(f"more than {MAX_SPECS} spec objects in the "
                       f"option; expected at most {MAX_SPECS}")
        for n, obj in enumerate(objects, start=1):
            where = entry if not isinstance(data, list) else \
                f"{entry}, object {n}"
            if not isinstance(obj, dict):
                raise fail(f"{config_json.describe(obj)} is not a JSON "
                           f"object; expected an object such as "
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
    elif "address" in obj:
        raise ValueError(f"address must be a string such as "
                         f"\"0000:0a:00.*\" or an object of regular "
                         f"expressions such as {{\"bus\": \"0a\"}}, not "
                         f"{config_json.describe(raw_address)}")
    devname = obj.get("devname")
    if "devname" in obj and not netdev_name.is_valid_netdev_name(
            devname):
        raise ValueError(f"devname {config_json.describe(devname)} is not "
                         f"a network interface name; expected "
                         f"{netdev_name.EXPECTED}")
    tags = {}
    for key, value in obj.items():
        if key in _SELECTORS:
            continue
        check_tag_key(key)
        tags[key] = tag_value(key, value)
    # The class and traits these tags give must be Placement names: the
    # matcher compares flavors with them as Placement does.
    if tags.get(placement_names.RESOURCE_CLASS_TAG):
        placement_names.resource_class(
            tags[placement_names.RESOURCE_CLASS_TAG])
    placement_names.tag_traits(tags)
    return DeviceSpec(
        vendor_id=_id(obj, "vendor_id"), product_id=_id(obj, "product_id"),
        address=address, devname=devname, tags=tags, exact_address=exact)


def check_tag_key(key: str) -> str:
    """``key`` when it may name a tag.

    :raises ValueError: a reserved key, or not a tag name.
    """
    if key in RESERVED_KEYS:
        raise ValueError(
            f"{key!r} is reserved (it has a fixed meaning in device_spec "
            f"or in a flavor) and cannot be a tag; reserved keys: "
            f"{', '.join(sorted(RESERVED_KEYS))}")
    if not TAG_KEY.match(key):
        raise ValueError(f"the key {config_json.describe(key)} is not a "
                         f"tag name; expected {TAG_KEY_EXPECTED}")
    return key


def _id(obj: Mapping[str, Any], key: str) -> str | None:
    if key not in obj or obj[key] == "*":
        return None
    value = obj[key]
    match = _ID.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{key} {config_json.describe(value)} is not a "
                         f"4-digit hex id; expected hex up to FFFF (such as "
                         f"\"8086\") or \"*\"")
    return f"{int(match.group(1), 16):04x}"


def tag_value(key: str, value: Any) -> str:
    """A tag's value as text; boolean-like tags normalised.

    :raises ValueError: not a string, number or boolean, not printable
        text, or too long.
    """
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif (isinstance(value, int) and value.bit_length() <= 64) or (
            isinstance(value, float) and math.isfinite(value)):
        text = str(value)
    else:
        raise ValueError(f"tag {key!r} has the value "
                         f"{config_json.describe(value)}; tags are strings, "
                         f"numbers or booleans")
    if len(text) > MAX_TAG_VALUE or not text.isprintable():
        raise ValueError(f"tag {key!r} has the value "
                         f"{config_json.describe(value)}; expected "
                         f"printable text of at most {MAX_TAG_VALUE} "
                         f"characters")
    if key in BOOLEAN_TAGS:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise ValueError(f"tag {key!r} must be a boolean (yes/no, "
                         f"true/false, 1/0), not {text!r}")
    return text
