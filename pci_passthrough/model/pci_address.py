"""PCI addresses: normalising them, ordering them, and the two address
forms of Nova's device_spec (a glob string and a dict of regexes)."""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from pci_passthrough.model._address_regex import FieldRegex, RegexError

# Nova's limits for device_spec addresses (nova/pci/utils.py). Devices in
# Intel VMD domains (5 hex digits, 10000 and up) exceed MAX_DOMAIN in the
# glob form, as in Nova; the dict form ({"domain": "1000[0-9]"}) and
# devname still select them.
MAX_DOMAIN = 0xFFFF
MAX_BUS = 0xFF
MAX_SLOT = 0x1F
MAX_FUNC = 0x7

_ADDRESS = re.compile(
    r"(?:0x)?([0-9a-f]{1,8}):(?:0x)?([0-9a-f]{1,2}):(?:0x)?([0-9a-f]{1,2})"
    r"\.(?:0x)?([0-7])\Z", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
# "0000:0a:00.0" with room for spaces and 0x prefixes.
MAX_GLOB_CHARS = 64
FIELDS = ("domain", "bus", "slot", "function")


def normalize_address(text: str) -> str:
    """``dddd:bb:ss.f`` in lower case.

    Accepts a ``0x`` prefix on fields and upper case; a domain of more than
    four digits (Intel VMD domains such as ``10000``) is kept as it is.

    :raises ValueError: not a full PCI address.
    """
    match = _ADDRESS.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a PCI address (dddd:bb:ss.f)")
    dom, bus, slot, func = (int(g, 16) for g in match.groups())
    if slot > MAX_SLOT:
        raise ValueError(f"{text!r}: slot {slot:#x} is over {MAX_SLOT:#x}")
    return f"{dom:04x}:{bus:02x}:{slot:02x}.{func:x}"


def address_sort_key(address: str) -> tuple[int, int, int, int]:
    """Numeric order: domain 10000 after domain ffff, unlike text order."""
    dom, bus, rest = address.split(":")
    slot, func = rest.split(".")
    return int(dom, 16), int(bus, 16), int(slot, 16), int(func, 16)


def split_address(address: str) -> dict[str, str]:
    """The fields of a normalised address, as text."""
    dom, bus, rest = address.split(":")
    slot, func = rest.split(".")
    return {"domain": dom, "bus": bus, "slot": slot, "function": func}


class AddressSyntaxError(ValueError):
    """An address in a spec is malformed; the message says how."""


@dataclasses.dataclass(frozen=True, slots=True)
class AddressGlob:
    """Nova's glob form: ``[[[[dom]:]bus]:][slot][.[func]]``; an empty
    field or ``*`` matches anything.  Fields hold ints or None (any)."""

    domain: int | None
    bus: int | None
    slot: int | None
    function: int | None

    @classmethod
    def parse(cls, text: str) -> "AddressGlob":
        if len(text) > MAX_GLOB_CHARS:
            raise AddressSyntaxError(
                f"the address has {len(text)} characters; expected at most "
                f"{MAX_GLOB_CHARS}, as in [[[[domain]:]bus]:][slot]"
                f"[.[function]]")
        text = text.strip()
        if text.count(".") > 1:
            raise AddressSyntaxError(
                f"{text!r} has more than one '.'; expected "
                f"[[[[domain]:]bus]:][slot][.[function]]")
        head, _, func = text.partition(".")
        parts = head.split(":")
        if len(parts) > 3:
            raise AddressSyntaxError(
                f"{text!r} has too many ':' fields; expected "
                f"[[[[domain]:]bus]:][slot][.[function]]")
        parts = [""] * (3 - len(parts)) + parts
        dom, bus, slot = parts
        return cls(
            domain=_glob_field(text, "domain", dom, MAX_DOMAIN),
            bus=_glob_field(text, "bus", bus, MAX_BUS),
            slot=_glob_field(text, "slot", slot, MAX_SLOT),
            function=_glob_field(text, "function", func, MAX_FUNC),
        )

    def match(self, address: str) -> bool:
        dom, bus, slot, func = address_sort_key(address)
        return ((self.domain is None or self.domain == dom)
                and (self.bus is None or self.bus == bus)
                and (self.slot is None or self.slot == slot)
                and (self.function is None or self.function == func))

    def exact(self) -> str | None:
        """The single address this glob names, if it names one."""
        if None in (self.domain, self.bus, self.slot, self.function):
            return None
        return (f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}."
                f"{self.function:x}")


def _glob_field(text: str, name: str, value: str,
                maximum: int) -> int | None:
    value = value.strip()
    if value in ("", "*"):
        return None
    if not _HEX.match(value):
        raise AddressSyntaxError(
            f"{text!r}: the {name} field {value!r} is not hex; each field "
            f"is hex or '*' (partial globs such as '0*' are not supported)")
    number = int(value, 16)
    if number > maximum:
        raise AddressSyntaxError(
            f"{text!r}: the {name} {value} is over its maximum "
            f"{maximum:x}")
    return number


@dataclasses.dataclass(frozen=True, slots=True)
class AddressRegex:
    """Nova's dict form: a regular expression per field, matched from the
    start of the field; a missing field matches anything.  Patterns are
    matched in linear time (see
    :mod:`pci_passthrough.model._address_regex`)."""

    patterns: tuple[tuple[str, FieldRegex], ...]

    @classmethod
    def parse(cls, value: Mapping[str, Any]) -> "AddressRegex":
        patterns = []
        for key, pattern in value.items():
            if key not in FIELDS:
                raise AddressSyntaxError(
                    f"unknown address field {key!r}; expected some of "
                    f"{', '.join(FIELDS)}")
            if not isinstance(pattern, str):
                raise AddressSyntaxError(
                    f"the {key} field must be a regular expression "
                    f"string, not {type(pattern).__name__}")
            try:
                patterns.append((key, FieldRegex(pattern)))
            except RegexError as exc:
                raise AddressSyntaxError(
                    f"the {key} field {pattern[:40]!r}"
                    f"{'...' if len(pattern) > 40 else ''} is refused: "
                    f"{exc}") from None
        return cls(tuple(patterns))

    def match(self, address: str) -> bool:
        fields = split_address(address)
        return all(p.match(fields[key]) for key, p in self.patterns)
