"""JSON entries of the configuration, read as hostile input.

Every value of ``device_spec`` and ``flavor`` goes through :func:`load`:
bounded in size, with a clear reason for everything Python's json module
would accept but an operator cannot have meant (NaN, Infinity, numbers
that overflow to infinity, duplicate keys) and for what it would raise on
without saying so (deep nesting, which raises RecursionError).  Errors
show the entry through :func:`shorten` and values through
:func:`describe`, which never recurse and never print a control
character to the operator's terminal.
"""

import json
import math
from typing import Any

#: Longest entry accepted, in characters.  A list of a few hundred specs
#: fits; anything longer is a mistake (or an attack on the parser).
MAX_ENTRY_CHARS = 65536
#: Longest integer literal: ids and NUMA nodes are short.
MAX_INT_DIGITS = 20


class EntryError(ValueError):
    """The entry is refused; the message says why and what was expected."""


def load(text: object) -> Any:
    """The JSON value of one option entry.

    :raises EntryError: not text, too long, not JSON, nested too deeply,
        NaN/Infinity, an infinite or over-long number, or a duplicate key.
    """
    if not isinstance(text, str):
        raise EntryError(f"expected JSON text, not {type(text).__name__}")
    if len(text) > MAX_ENTRY_CHARS:
        raise EntryError(f"the entry has {len(text)} characters; at most "
                         f"{MAX_ENTRY_CHARS} are accepted")
    try:
        return json.loads(text, parse_constant=_constant,
                          parse_float=_float, parse_int=_int,
                          object_pairs_hook=_object)
    except EntryError:
        raise
    except RecursionError:
        raise EntryError("the JSON is nested too deeply; expected an "
                         "object or a list of objects") from None
    except ValueError as exc:
        # json.JSONDecodeError and the int conversion limits.
        raise EntryError(f"not valid JSON ({exc})") from None


def _constant(name: str) -> Any:
    raise EntryError(f"{name} is not a number an option can use; expected "
                     f"a string or a finite number")


def _float(text: str) -> float:
    _check_digits(text)
    value = float(text)
    if not math.isfinite(value):
        raise EntryError(f"the number {shorten(text, 40)} is too large; "
                         f"expected a finite number")
    return value


def _int(text: str) -> int:
    _check_digits(text)
    return int(text)


def _check_digits(text: str) -> None:
    if len(text) > MAX_INT_DIGITS:
        raise EntryError(f"the number {shorten(text, 40)} has more than "
                         f"{MAX_INT_DIGITS} characters")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise EntryError(f"the key {shorten(repr(key), 60)} appears "
                             f"twice in one object; each key may appear "
                             f"once")
        obj[key] = value
    return obj


def shorten(text: str, limit: int = 80) -> str:
    """``text`` on one line, at most ``limit`` characters, with every
    character that is not printable escaped."""
    # Only the start is shown: never walk a huge text to show 80 chars.
    head = text[: limit * 4]
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1]
                    for ch in " ".join(head.split()))
    if len(shown) > limit or len(head) < len(text):
        return shown[: limit - 3] + "..."
    return shown


def describe(value: object) -> str:
    """A short, safe rendering of one JSON value for an error message;
    containers are named, not printed (they may be deep)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return shorten(repr(value), 60)
    if isinstance(value, int) and value.bit_length() > 64:
        # repr() of a huge int is slow, or refused past 4300 digits.
        return "a very large integer"
    if isinstance(value, int | float):
        return shorten(repr(value), 40)
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a {type(value).__name__}"
