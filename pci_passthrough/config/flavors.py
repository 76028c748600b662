"""PCI flavors: what a port asks for.

A flavor is a JSON object in the option ``[pci_passthrough] flavor`` with a
``name`` and the attributes a device must have: the keys of Nova's
``[pci] alias`` (vendor_id, product_id, device_type, numa_policy) and any
tag some device_spec attaches.  Flavors with the same name are OR-ed.
Values compare as Nova compares them: ids and strings case-insensitively.
``resource_class`` and ``traits`` have the meaning Nova's alias gives
them, on the host and in Placement alike: the class compared after
normalisation, the traits as required traits (a device serves the
flavor when its traits include them all); both are stored normalised
(:mod:`pci_passthrough.model.placement_names`).

Entries are read as hostile input (:mod:`pci_passthrough.config._json`).
A flavor name must be writable on the command line, where
``pci-passthrough claim`` takes ``FLAVOR[,FLAVOR...]`` and Nova's flavor
extra spec takes ``name:count``: :data:`FLAVOR_NAME`.  A special attribute
must be a tag name, never a key with a fixed meaning (address, vendor_id,
...): every device has those, so such a configuration could only make
explain and claim disagree.
"""

import dataclasses
import json
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.config import _json as config_json
from pci_passthrough.config.devspec import (
    RESERVED_KEYS,
    check_tag_key,
    tag_value,
)
from pci_passthrough.model import placement_names
from pci_passthrough.model.device import DEV_TYPES
from pci_passthrough.model.pci_address import normalize_address
from pci_passthrough.model.placement_names import (
    RESOURCE_CLASS_TAG,
    TRAITS_TAG,
)

LOG = logging.getLogger(__name__)

# Nova's "socket" policy needs the host's socket topology, which sysfs
# scanning alone does not give: it is refused rather than half-applied.
NUMA_POLICIES = ("required", "legacy", "preferred")
#: Keys a flavor may name besides device_spec tags.
BUILTIN_KEYS = ("vendor_id", "product_id", "device_type", "numa_policy",
                "address", "numa_node", RESOURCE_CLASS_TAG, TRAITS_TAG)
# Keys every device has (its class and traits): never special.
_NOVA_KEYS = (RESOURCE_CLASS_TAG, TRAITS_TAG)
# Keys that tie a flavor to one slot or node: accepted, with a warning.
_PINNING_KEYS = ("address", "numa_node")
_ID = re.compile(r"[0-9a-fA-F]{4}\Z")
_NUMA_NODE = re.compile(r"[0-9]{1,4}\Z", re.ASCII)
#: Linux numbers NUMA nodes below 1024 (NODES_SHIFT is at most 10).
MAX_NUMA_NODE = 1023
#: A flavor name survives the command line (no ',' ':' or spaces, no
#: leading '-' that would read as an option), logs and JSON output.
FLAVOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
FLAVOR_NAME_EXPECTED = ("1 to 64 ASCII letters, digits, '_', '.' or '-', "
                        "not starting with '.' or '-' (the command line "
                        "separates flavors with ',', Nova with ':')")
#: Most flavor objects the option may hold.
MAX_FLAVORS = 1024
#: Most special attributes: each is checked for every device and flavor.
MAX_SPECIAL_ATTRIBUTES = 64


@dataclasses.dataclass(frozen=True, slots=True)
class FlavorSpec:
    """One alternative of a flavor.

    ``attrs`` are the attributes a device must have, normalised (lower
    case; ``device_type`` is stored as ``dev_type``, the device field it
    compares with; ``resource_class`` and ``traits`` as Placement names,
    the traits sorted and comma separated).
    """

    name: str
    attrs: tuple[tuple[str, str], ...]
    numa_policy: str | None = None

    def get(self, key: str) -> str | None:
        for k, v in self.attrs:
            if k == key:
                return v
        return None

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.attrs)

    def describe(self) -> str:
        shown = {("device_type" if k == "dev_type" else k): v
                 for k, v in self.attrs}
        if self.numa_policy:
            shown["numa_policy"] = self.numa_policy
        return json.dumps(shown, sort_keys=True)


@dataclasses.dataclass(frozen=True, slots=True)
class FlavorSet:
    """The configured flavors by name, and the special attributes."""

    flavors: Mapping[str, tuple[FlavorSpec, ...]]
    special_attributes: frozenset[str]
    known_tags: frozenset[str] = frozenset()

    def get(self, name: str) -> tuple[FlavorSpec, ...]:
        try:
            return self.flavors[name]
        except KeyError:
            raise exception.UnknownFlavor(
                name=name,
                known=", ".join(sorted(self.flavors)) or "none") from None

    def inline(self, spec: Mapping[str, Any], port: int
               ) -> tuple[FlavorSpec, ...]:
        """An anonymous flavor from a port's inline spec, under the same
        rules as configured ones."""
        try:
            return (_parse_object(dict(spec, name=spec.get(
                "name", f"port-{port}")), self.known_tags),)
        except ValueError as exc:
            raise exception.InvalidPortRequest(port=port,
                                               reason=str(exc)) from None


def parse_flavors(values: Sequence[str], *, known_tags: Collection[str],
                  special_attributes: Collection[str],
                  option: str = "flavor",
                  group: str = "pci_passthrough") -> FlavorSet:
    """Parse every value of the option; the first invalid one raises.

    :param known_tags: the tag keys device_spec defines; a flavor key that
        is neither one of them nor a built-in key is an error (a typo must
        not silently match nothing).
    :raises InvalidFlavor: naming the option, the entry and what was
        expected.
    :raises InvalidOption: a special attribute that is not a tag name.
    """
    special = check_special_attributes(special_attributes, group=group)
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise exception.InvalidFlavor(
            group=group, option=option, entry="-",
            reason=f"expected a list of JSON texts, not "
                   f"{type(values).__name__}")
    if len(values) > MAX_FLAVORS:
        raise exception.InvalidFlavor(
            group=group, option=option, entry=f"#{MAX_FLAVORS + 1}",
            reason=f"more than {MAX_FLAVORS} flavors; expected at most "
                   f"{MAX_FLAVORS}")
    flavors: dict[str, list[FlavorSpec]] = {}
    tags = frozenset(known_tags)
    for position, text in enumerate(values, start=1):
        entry = f"#{position} " + (config_json.shorten(text)
                                   if isinstance(text, str) else "-")
        try:
            data = config_json.load(text)
        except config_json.EntryError as exc:
            raise exception.InvalidFlavor(
                group=group, option=option, entry=entry,
                reason=f"{exc}; expected an object such as {{\"name\": "
                       f"\"net1\", \"vendor_id\": \"8086\"}}") from None
        if not isinstance(data, dict):
            raise exception.InvalidFlavor(
                group=group, option=option, entry=entry,
                reason=f"{config_json.describe(data)} is not a flavor; "
                       f"expected a JSON object with a \"name\"")
        try:
            spec = _parse_object(data, tags)
        except ValueError as exc:
            raise exception.InvalidFlavor(group=group, option=option,
                                          entry=entry, reason=str(exc)) \
                from None
        for key in _PINNING_KEYS:
            if spec.get(key) is not None:
                LOG.warning("PCI flavor %s names %s: it is tied to one %s, "
                            "which is rarely meant", spec.name, key,
                            "slot" if key == "address" else "NUMA node")
        flavors.setdefault(spec.name, []).append(spec)
    return FlavorSet(
        flavors={k: tuple(v) for k, v in flavors.items()},
        special_attributes=special, known_tags=tags)


def check_special_attributes(values: Collection[str], *,
                             option: str = "special_attributes",
                             group: str = "pci_passthrough"
                             ) -> frozenset[str]:
    """The special attributes, when each is a tag name.

    :raises InvalidOption: naming the item and what was expected; a
        matching key (address, vendor_id, ...) is refused because every
        device has it.
    """
    if isinstance(values, str) or not isinstance(values, Collection):
        raise exception.InvalidOption(
            group=group, option=option, entry="-",
            reason=f"expected a list of tag names, not "
                   f"{type(values).__name__}")
    if len(values) > MAX_SPECIAL_ATTRIBUTES:
        raise exception.InvalidOption(
            group=group, option=option, entry=f"#{len(values)}",
            reason=f"more than {MAX_SPECIAL_ATTRIBUTES} special "
                   f"attributes; expected at most {MAX_SPECIAL_ATTRIBUTES}")
    for position, value in enumerate(values, start=1):
        entry = f"#{position} {config_json.describe(value)}"
        if not isinstance(value, str):
            raise exception.InvalidOption(
                group=group, option=option, entry=entry,
                reason="expected a tag name")
        if value in RESERVED_KEYS:
            raise exception.InvalidOption(
                group=group, option=option, entry=entry,
                reason=f"{value} has a fixed meaning in matching (every "
                       f"device has it, or it selects devices) and cannot "
                       f"be special; expected a device_spec tag such as "
                       f"group, not one of "
                       f"{', '.join(sorted(RESERVED_KEYS))}")
        if value in _NOVA_KEYS:
            raise exception.InvalidOption(
                group=group, option=option, entry=entry,
                reason=f"{value} has Nova's meaning (every device has a "
                       f"class and traits) and cannot be special; "
                       f"expected a device_spec tag such as group")
        try:
            check_tag_key(value)
        except ValueError as exc:
            raise exception.InvalidOption(
                group=group, option=option, entry=entry,
                reason=str(exc)) from None
    return frozenset(values)


def check_flavor_name(name: object) -> str:
    """``name`` when it may name a flavor.

    :raises ValueError: saying what was expected.
    """
    if not isinstance(name, str) or not FLAVOR_NAME.match(name):
        shown = config_json.describe(name) if name is not None else "none"
        raise ValueError(f"the flavor name {shown} cannot be used; a "
                         f"flavor needs a \"name\" of "
                         f"{FLAVOR_NAME_EXPECTED}")
    return name


def _parse_object(data: Mapping[str, Any],
                  known_tags: frozenset[str]) -> FlavorSpec:
    name = check_flavor_name(data.get("name"))
    attrs: dict[str, str] = {}
    numa_policy = None
    for key, value in data.items():
        if key == "name":
            continue
        if key not in BUILTIN_KEYS and key not in known_tags:
            known = sorted({*BUILTIN_KEYS, *known_tags})
            raise ValueError(
                f"flavor {name!r} has the unknown key "
                f"{config_json.describe(key)}; known keys: "
                f"{', '.join(known)} (tags come from device_spec)")
        if key == "numa_policy":
            numa_policy = _choice(name, key, value, NUMA_POLICIES)
        elif key in ("vendor_id", "product_id"):
            if not isinstance(value, str) or not _ID.match(value):
                raise ValueError(f"flavor {name!r}: {key} "
                                 f"{config_json.describe(value)} is not "
                                 f"4 hex digits such as \"8086\"")
            attrs[key] = value.lower()
        elif key == "device_type":
            attrs["dev_type"] = _choice(name, key, value, DEV_TYPES)
        elif key == "address":
            if not isinstance(value, str) or len(value) > 64:
                raise ValueError(f"flavor {name!r}: address "
                                 f"{config_json.describe(value)} is not a "
                                 f"PCI address (dddd:bb:ss.f)")
            try:
                attrs[key] = normalize_address(value)
            except ValueError as exc:
                raise ValueError(f"flavor {name!r}: {exc}") from None
        elif key == "numa_node":
            attrs[key] = str(_numa_node(name, value))
        elif key in _NOVA_KEYS:
            attrs[key] = _placement_value(name, key, value)
        else:
            attrs[key] = _tag_text(name, key, value)
    return FlavorSpec(name=name, attrs=tuple(sorted(attrs.items())),
                      numa_policy=numa_policy)


def _numa_node(name: str, value: Any) -> int:
    if isinstance(value, str) and _NUMA_NODE.match(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and \
            0 <= value <= MAX_NUMA_NODE:
        return value
    raise ValueError(f"flavor {name!r}: numa_node "
                     f"{config_json.describe(value)} is not a node number; "
                     f"expected 0 to {MAX_NUMA_NODE}")


def _placement_value(name: str, key: str, value: Any) -> str:
    text = _tag_text(name, key, value)
    try:
        if key == RESOURCE_CLASS_TAG:
            return placement_names.resource_class(text)
        traits = placement_names.traits_tag(text)
    except ValueError as exc:
        raise ValueError(f"flavor {name!r}: {exc}") from None
    if not traits:
        raise ValueError(f"flavor {name!r}: traits "
                         f"{config_json.describe(value)} names no trait; "
                         f"expected comma-separated names such as "
                         f"\"CUSTOM_FAST,HW_NIC_SRIOV\"")
    return ",".join(sorted(traits))


def _choice(name: str, key: str, value: Any,
            choices: Sequence[str]) -> str:
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    raise ValueError(f"flavor {name!r}: {key} {config_json.describe(value)}"
                     f" is not one of {', '.join(choices)}")


def _tag_text(name: str, key: str, value: Any) -> str:
    # The same normalisation as device_spec's tags, so "yes" in a flavor
    # equals "true" on a device.
    try:
        return tag_value(key, value).lower()
    except ValueError as exc:
        raise ValueError(f"flavor {name!r}: {exc}") from None
