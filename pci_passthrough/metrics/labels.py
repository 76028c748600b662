"""The Prometheus names the collector writes, and the label names and
values it accepts: a bad one is refused (InvalidMetricsInput) rather
than exposed."""

import re
from collections.abc import Iterable, Sequence

from pci_passthrough.exception import InvalidMetricsInput

#: Every family's name starts with it.
PREFIX = "pci_passthrough_"
# Action and repair kinds are the values of the library's enums; the
# bound keeps a bug from creating series without end.
MAX_LABEL_VALUES = 64

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_RESERVED_LABELS = ("pf", "state", "le", "quantile")


def check_tag_labels(tag_labels: Sequence[str]) -> tuple[str, ...]:
    """The device_spec tags to expose as pool labels, each checked.

    :raises InvalidMetricsInput: not a Prometheus label name, reserved,
        or given twice.
    """
    names = tuple(tag_labels)
    for name in names:
        if (not isinstance(name, str) or not _LABEL_NAME.match(name)
                or name.startswith("__") or name in _RESERVED_LABELS):
            raise InvalidMetricsInput(
                what=f"tag label {name!r}",
                reason="not a Prometheus label name, or reserved",
                expected="[a-zA-Z_][a-zA-Z0-9_]*, not starting with __, "
                         "not " + ", ".join(_RESERVED_LABELS))
    if len(set(names)) != len(names):
        raise InvalidMetricsInput(what=f"tag labels {names!r}",
                                  reason="a label appears twice",
                                  expected="each label once")
    return names


def kind_value(what: str, kind: object) -> str:
    """A kind label's value (a StrEnum member counts under its value).

    :raises InvalidMetricsInput: not a kind name.
    """
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidMetricsInput(
            what=f"{what} {kind!r}", reason="not a kind name",
            expected="lower-case letters, digits and _, 1 to 64")
    return str(kind)


def pool_label_names(tags: Iterable[str]) -> tuple[str, ...]:
    """The device_spec tag names that can be pool labels, sorted: those
    that are Prometheus label names and not reserved."""
    return tuple(sorted(
        t for t in set(tags)
        if isinstance(t, str) and _LABEL_NAME.match(t)
        and not t.startswith("__") and t not in _RESERVED_LABELS))
