"""PCI flavors: what a port asks for.

A flavor is a JSON object in the option ``[pci_passthrough] flavor`` with a
``name`` and the attributes a device must have: the keys of Nova's
``[pci] alias`` (vendor_id, product_id, device_type, numa_policy) and any
tag some device_spec attaches.  Flavors with the same name are OR-ed.
Values compare as Nova compares them: ids and strings case-insensitively.
"""

import dataclasses
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.device import DEV_TYPES
from pci_passthrough.devspec import tag_value
from pci_passthrough.pci_address import normalize_address

LOG = logging.getLogger(__name__)

# Nova's "socket" policy needs the host's socket topology, which sysfs
# scanning alone does not give: it is refused rather than half-applied.
NUMA_POLICIES = ("required", "legacy", "preferred")
#: Keys a flavor may name besides device_spec tags.
BUILTIN_KEYS = ("vendor_id", "product_id", "device_type", "numa_policy",
                "address", "numa_node")
# Keys that tie a flavor to one slot or node: accepted, with a warning.
_PINNING_KEYS = ("address", "numa_node")
_ID = re.compile(r"[0-9a-fA-F]{4}\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class FlavorSpec:
    """One alternative of a flavor.

    ``attrs`` are the attributes a device must have, normalised (lower
    case; ``device_type`` is stored as ``dev_type``, the device field it
    compares with).
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
    """
    flavors: dict[str, list[FlavorSpec]] = {}
    tags = frozenset(known_tags)
    for position, text in enumerate(values, start=1):
        entry = f"#{position} {_shorten(text)}"
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise exception.InvalidFlavor(
                group=group, option=option, entry=entry,
                reason=f"not valid JSON ({exc}); expected an object such "
                       f"as {{\"name\": \"net1\", \"vendor_id\": "
                       f"\"8086\"}}") from None
        if not isinstance(data, dict):
            raise exception.InvalidFlavor(
                group=group, option=option, entry=entry,
                reason="expected a JSON object with a \"name\"")
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
        special_attributes=frozenset(special_attributes),
        known_tags=tags)


def _parse_object(data: Mapping[str, Any],
                  known_tags: frozenset[str]) -> FlavorSpec:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a flavor needs a \"name\" (a non-empty string)")
    attrs: dict[str, str] = {}
    numa_policy = None
    for key, value in data.items():
        if key == "name":
            continue
        if key not in BUILTIN_KEYS and key not in known_tags:
            known = sorted({*BUILTIN_KEYS, *known_tags})
            raise ValueError(
                f"flavor {name!r} has the unknown key {key!r}; known keys: "
                f"{', '.join(known)} (tags come from device_spec)")
        if key == "numa_policy":
            numa_policy = _choice(name, key, value, NUMA_POLICIES)
        elif key in ("vendor_id", "product_id"):
            if not isinstance(value, str) or not _ID.match(value):
                raise ValueError(f"flavor {name!r}: {key} {value!r} is not "
                                 f"4 hex digits such as \"8086\"")
            attrs[key] = value.lower()
        elif key == "device_type":
            attrs["dev_type"] = _choice(name, key, value, DEV_TYPES)
        elif key == "address":
            try:
                attrs[key] = normalize_address(str(value))
            except ValueError as exc:
                raise ValueError(f"flavor {name!r}: {exc}") from None
        elif key == "numa_node":
            if isinstance(value, bool) or not isinstance(
                    value, (int, str)) or not str(value).isdigit():
                raise ValueError(f"flavor {name!r}: numa_node {value!r} is "
                                 f"not a node number")
            attrs[key] = str(int(value))
        else:
            attrs[key] = _tag_text(name, key, value)
    return FlavorSpec(name=name, attrs=tuple(sorted(attrs.items())),
                      numa_policy=numa_policy)


def _choice(name: str, key: str, value: Any,
            choices: Sequence[str]) -> str:
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    raise ValueError(f"flavor {name!r}: {key} {value!r} is not one of "
                     f"{', '.join(choices)}")


def _tag_text(name: str, key: str, value: Any) -> str:
    # The same normalisation as device_spec's tags, so "yes" in a flavor
    # equals "true" on a device.
    try:
        return tag_value(key, value).lower()
    except ValueError as exc:
        raise ValueError(f"flavor {name!r}: {exc}") from None


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
