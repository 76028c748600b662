"""A netdev state as JSON text, for a column of the claims ledger, and
as the document of primitives that text holds, for the privileged
restore (:mod:`pci_passthrough.privsep`, over msgpack).

What is read back is hostile input: a ledger may be damaged, edited by
hand or written by another version, and a privileged process trusts
nothing its unprivileged caller sends.  It is refused unless it is
exactly what :func:`to_doc` makes (version, keys and types), with an
error naming the source and the field.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any

from pci_passthrough.exception import InvalidNetdevState
from pci_passthrough.hygiene.record import NetdevState, VfState

VERSION = 1
# A journal is about 250 characters; the bound keeps a damaged row from
# costing memory or deep recursion in the parser.
MAX_CHARS = 4096
_KEYS = ("version", "netdev", "mac", "mtu", "up", "vf")
_VF_KEYS = ("pf", "index", "mac", "vlan", "qos", "vlan_proto",
            "spoof_check", "trust")


def to_doc(state: NetdevState) -> dict[str, Any]:
    """``state`` as a dict of str, int, bool and None (and one nested
    dict): what JSON and msgpack both carry unchanged."""
    vf = state.vf
    return {
        "version": VERSION, "netdev": state.netdev, "mac": state.mac,
        "mtu": state.mtu, "up": state.up,
        "vf": None if vf is None else {
            "pf": vf.pf, "index": vf.index, "mac": vf.mac,
            "vlan": vf.vlan, "qos": vf.qos, "vlan_proto": vf.vlan_proto,
            "spoof_check": vf.spoof_check, "trust": vf.trust,
        },
    }


def to_json(state: NetdevState) -> str:
    """The journal text of ``state``, stable for equal records."""
    return json.dumps(to_doc(state), sort_keys=True, separators=(",", ":"))


class _Refused(Exception):
    """Raised inside the JSON parser, turned into InvalidNetdevState."""

    def __init__(self, field: str, reason: str, expected: str) -> None:
        super().__init__(reason)
        self.field, self.reason, self.expected = field, reason, expected


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _Refused(_field_name(key), "the key appears twice",
                           "each key once")
        doc[key] = value
    return doc


def _field_name(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _keys(doc: object, keys: tuple[str, ...], prefix: str
          ) -> Mapping[str, Any]:
    where = prefix.rstrip(".") or "(journal)"
    if not isinstance(doc, dict):
        raise _Refused(where, f"got {type(doc).__name__}",
                       "a JSON object")
    for key in doc:
        if key not in keys:
            raise _Refused(prefix + _field_name(key), "unknown key",
                           "only the keys " + ", ".join(keys))
    for key in keys:
        if key not in doc:
            raise _Refused(prefix + key, "missing", "the key present")
    return doc


def from_json(text: object, source: str) -> NetdevState:
    """The state a journal text holds.

    :param source: what the text is, for errors (``"journal of device
        0000:3b:10.2 in /var/lib/pci_passthrough/claims.db"``).
    :raises InvalidNetdevState: naming ``source`` and the field.
    """
    return _refusing(source, _parse, text)


def from_doc(doc: object, source: str) -> NetdevState:
    """The state a document made by :func:`to_doc` holds.

    :param source: what the document is, for errors.
    :raises InvalidNetdevState: naming ``source`` and the field.
    """
    return _refusing(source, _build, doc)


def _refusing(source: str, parse: Callable[[object], NetdevState],
              value: object) -> NetdevState:
    try:
        return parse(value)
    except _Refused as exc:
        raise InvalidNetdevState(source=source, field=exc.field,
                                 reason=exc.reason,
                                 expected=exc.expected) from None
    except InvalidNetdevState as exc:
        raise InvalidNetdevState(source=source, field=exc.kwargs["field"],
                                 reason=exc.kwargs["reason"],
                                 expected=exc.kwargs["expected"]) from None


def _parse(text: object) -> NetdevState:
    if not isinstance(text, str):
        raise _Refused("(journal)", f"got {type(text).__name__}",
                       "JSON text")
    if len(text) > MAX_CHARS:
        raise _Refused("(journal)", f"{len(text)} characters",
                       f"at most {MAX_CHARS}")
    try:
        # NaN and Infinity parse as floats, which no field accepts: the
        # error then names the field.
        doc = json.loads(text, object_pairs_hook=_unique)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers longer than
        # Python converts.
        raise _Refused("(journal)", f"not JSON ({exc})",
                       "the JSON object to_json() writes") from None
    return _build(doc)


def _build(doc: object) -> NetdevState:
    top = _keys(doc, _KEYS, "")
    version = top["version"]
    if type(version) is not int or version != VERSION:
        raise _Refused("version", f"got {version!r}",
                       f"{VERSION}: this library reads journals of "
                       f"version {VERSION} only")
    vf_doc = top["vf"]
    vf = None
    if vf_doc is not None:
        fields = _keys(vf_doc, _VF_KEYS, "vf.")
        vf = VfState(**fields)
    return NetdevState(netdev=top["netdev"], mac=top["mac"],
                       mtu=top["mtu"], up=top["up"], vf=vf)
