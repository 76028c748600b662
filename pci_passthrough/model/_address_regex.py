r"""Regular expressions of device_spec addresses, matched in linear time.

Nova matches the dict form of a device_spec address (``{"bus": "0[0-9]"}``)
with Python's ``re.match`` against each field of a device's address.  That
engine backtracks, and its time can explode not in the length of the
subject (a field is at most 8 hex digits: 2**8 paths are harmless) but in
the structure of the pattern, which is configuration: the 20 characters
``(?:(?:0?){50}){50}x`` give ``re.match`` about 10**12 ways to fail on the
domain ``0000``, so it never returns and the service hangs at start.

Decision: match with a linear-time engine and refuse what has no
linear-time meaning.

* The pattern is parsed by Python's own regex parser (``re._parser``), so
  the syntax and its error messages are Python's, as in Nova.
* The parse tree becomes a Thompson NFA, simulated one set of states per
  character: one match costs O(states x field length) whatever the
  pattern.  Results are cached per field value (a host has few distinct
  domains, buses, slots and functions).
* Counted repetition is expanded into states, and a pattern may have at
  most :data:`MAX_STATES` states and :data:`MAX_PATTERN_CHARS`
  characters: ``{"bus": "a{1000}"}`` is refused with a message naming the
  bound, as is a repeat count Python's parser cannot even hold.
* Backreferences, lookahead and lookbehind, conditionals, atomic groups
  and possessive repeats are refused: they have no NFA form, and nothing
  in a PCI address field needs them.
* Everything else means what it means to ``re.match``: anchors
  (``^ $ \A \Z \b \B``), classes and categories, alternation, greedy and
  lazy repeats, groups, inline flags (``i a s m x u``).  Under
  IGNORECASE, a character matches when it, its lower case or its upper
  case form matches: only exotic Unicode folds (U+017F LONG S matching
  ``s``) may differ from Python, and no address field holds them.
"""

import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any

# re._parser is the parser re.compile itself uses (sre_parse before 3.11).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

#: Longest pattern accepted, in characters.
MAX_PATTERN_CHARS = 256
#: Most NFA states a pattern may expand to (counted repeats included).
MAX_STATES = 512
#: Most field values whose result one pattern remembers.
MAX_CACHED = 4096

_I, _M, _S, _A = (int(f) for f in (re.IGNORECASE, re.MULTILINE,
                                   re.DOTALL, re.ASCII))
_CHAR, _SPLIT, _ASSERT, _MATCH = range(4)

_REFUSED = {
    "GROUPREF": "backreferences such as \\1 or (?P=name)",
    "GROUPREF_EXISTS": "conditionals such as (?(1)a|b)",
    "ASSERT": "lookahead or lookbehind such as (?=a) or (?<=a)",
    "ASSERT_NOT": "negative lookahead or lookbehind such as (?!a)",
    "ATOMIC_GROUP": "atomic groups such as (?>a)",
    "POSSESSIVE_REPEAT": "possessive repeats such as a*+",
}

CharTest = Callable[[str], bool]
PosTest = Callable[[str, int], bool]


class RegexError(ValueError):
    """The pattern is invalid or refused; the message says why."""


class FieldRegex:
    """One address field's pattern, matched from the start of the field
    as ``re.match`` would, in time linear in the field's length.

    :raises RegexError: not a string, invalid, too large or using a
        construct without a linear-time meaning.
    """

    __slots__ = ("_args", "_cache", "_kinds", "_outs", "_start",
                 "pattern")

    def __init__(self, pattern: object) -> None:
        if not isinstance(pattern, str):
            raise RegexError(f"expected a regular expression string, not "
                             f"{type(pattern).__name__}")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise RegexError(f"the pattern has {len(pattern)} characters; "
                             f"at most {MAX_PATTERN_CHARS} are accepted")
        try:
            tree = _parser.parse(pattern, 0)
        except re.error as exc:
            raise RegexError(f"not a valid regular expression "
                             f"({exc})") from None
        except (OverflowError, RecursionError) as exc:
            raise RegexError(f"not a usable regular expression "
                             f"({exc})") from None
        items = list(tree)
        size = _size(items) + 1
        if size > MAX_STATES:
            raise RegexError(
                f"the pattern expands to {size} states, over the limit of "
                f"{MAX_STATES}; use smaller repeat counts")
        self.pattern = pattern
        self._kinds: list[int] = []
        self._outs: list[tuple[int, ...]] = []
        self._args: list[Any] = []
        accept = self._add(_MATCH, ())
        self._start = self._seq(items, accept, int(tree.state.flags))
        self._cache: dict[str, bool] = {}

    def match(self, text: str) -> bool:
        """Whether the pattern matches at the start of ``text``."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._run(text)
            if len(self._cache) < MAX_CACHED:
                self._cache[text] = cached
        return cached

    @property
    def cached_results(self) -> int:
        """How many field values' results are kept: at most
        ``MAX_CACHED``, whatever the host's devices, which bounds the
        memory one device_spec pattern takes."""
        return len(self._cache)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FieldRegex)
                and other.pattern == self.pattern)

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"FieldRegex({self.pattern!r})"

    # -- simulation --------------------------------------------------------

    def _run(self, text: str) -> bool:
        current = self._closure((self._start,), text, 0)
        for pos, char in enumerate(text):
            if current is None:
                return True
            args, outs = self._args, self._outs
            step = [outs[s][0] for s in current if args[s](char)]
            if not step:
                return False
            current = self._closure(step, text, pos + 1)
        return current is None

    def _closure(self, seeds: Iterable[int], text: str,
                 pos: int) -> list[int] | None:
        """The character-consuming states reachable from ``seeds`` at
        ``pos`` without consuming; None when the accepting state is."""
        kinds, outs, args = self._kinds, self._outs, self._args
        stack = list(seeds)
        stack.reverse()
        seen: set[int] = set()
        found = []
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            kind = kinds[state]
            if kind == _CHAR:
                found.append(state)
            elif kind == _MATCH:
                return None
            elif kind == _SPLIT:
                stack.extend(reversed(outs[state]))
            elif args[state](text, pos):
                stack.append(outs[state][0])
        return found

    # -- construction ----------------------------------------------------

    def _add(self, kind: int, outs: tuple[int, ...], arg: Any = None
             ) -> int:
        self._kinds.append(kind)
        self._outs.append(outs)
        self._args.append(arg)
        return len(self._kinds) - 1

    def _seq(self, items: Iterable[Any], nxt: int, flags: int) -> int:
        """States for ``items`` followed by state ``nxt``; built from the
        end, so each item knows where it goes next."""
        for op, av in reversed(list(items)):
            nxt = self._item(op, av, nxt, flags)
        return nxt

    def _item(self, op: Any, av: Any, nxt: int, flags: int) -> int:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return self._add(_CHAR, (nxt,), _char_test(name, av, flags))
        if name == "AT":
            return self._add(_ASSERT, (nxt,), _position_test(str(av),
                                                             flags))
        if name == "BRANCH":
            starts = tuple(self._seq(alt, nxt, flags) for alt in av[1])
            return self._add(_SPLIT, starts)
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, sub = av
            return self._seq(sub, nxt, (flags | add_flags) & ~del_flags)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            # Greedy or lazy decides which match, not whether one exists.
            low, high, sub = av
            if _size(sub) == 0:
                return nxt
            if high == _c.MAXREPEAT:
                loop = self._add(_SPLIT, ())
                self._outs[loop] = (self._seq(sub, loop, flags), nxt)
                tail = loop
            else:
                tail = nxt
                for _ in range(high - low):
                    tail = self._add(_SPLIT, (self._seq(sub, tail, flags),
                                              nxt))
            for _ in range(low):
                tail = self._seq(sub, tail, flags)
            return tail
        raise AssertionError(f"unexpected {name}: _size() checks first")


def _size(items: Iterable[Any]) -> int:
    """States the items expand to; refuses unsupported constructs."""
    total = 0
    for op, av in items:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "AT"):
            total += 1
        elif name == "BRANCH":
            total += 1 + sum(_size(alt) for alt in av[1])
        elif name == "SUBPATTERN":
            total += _size(av[3])
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = av
            inner = _size(sub)
            if inner:
                total += inner * low + (inner + 1 if high == _c.MAXREPEAT
                                        else (inner + 1) * (high - low))
        elif name in _REFUSED:
            raise RegexError(f"{_REFUSED[name]} cannot be matched in "
                             f"linear time and are not accepted")
        else:
            raise RegexError(f"the construct {name} is not accepted")
        if total > MAX_STATES:
            # Stop early: nested counts would only make it larger.
            return total
    return total


# -- character and position tests ---------------------------------------

def _char_test(name: str, av: Any, flags: int) -> CharTest:
    test: CharTest
    if name == "ANY":
        if flags & _S:
            return lambda ch: True
        return lambda ch: ch != "\n"
    if name == "IN":
        test = _class_test(av, flags)
    else:
        literal = chr(av)
        test = literal.__eq__
        if name == "NOT_LITERAL":
            base = _ignore_case(test) if flags & _I else test
            return lambda ch: not base(ch)
    return _ignore_case(test) if flags & _I else test


def _ignore_case(test: CharTest) -> CharTest:
    def folded(ch: str) -> bool:
        return any(len(form) == 1 and test(form)
                   for form in (ch, ch.lower(), ch.upper()))
    return folded


def _class_test(items: Any, flags: int) -> CharTest:
    negate = False
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[CharTest] = []
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(chr(av))
        elif name == "RANGE":
            ranges.append(av)
        elif name == "CATEGORY":
            categories.append(_category(str(av), flags))
        else:
            raise RegexError(f"the class item {name} is not accepted")

    def member(ch: str) -> bool:
        code = ord(ch)
        return (ch in chars or any(lo <= code <= hi for lo, hi in ranges)
                or any(cat(ch) for cat in categories))

    test = _ignore_case(member) if flags & _I else member
    if negate:
        return lambda ch: not test(ch)
    return test


def _is_word(flags: int) -> CharTest:
    if flags & _A:
        return lambda ch: ch.isascii() and (ch.isalnum() or ch == "_")
    return lambda ch: ch.isalnum() or ch == "_"


def _category(name: str, flags: int) -> CharTest:
    ascii_only = bool(flags & _A)
    base: CharTest
    kind = name.removeprefix("CATEGORY_").removeprefix("NOT_")
    if kind == "DIGIT":
        base = ((lambda ch: "0" <= ch <= "9") if ascii_only
                else str.isdecimal)
    elif kind == "SPACE":
        base = ((lambda ch: ch in " \t\n\r\f\v") if ascii_only
                else str.isspace)
    elif kind == "WORD":
        base = _is_word(flags)
    else:
        raise RegexError(f"the category {name} is not accepted")
    if "_NOT_" in name:
        return lambda ch: not base(ch)
    return base


def _position_test(name: str, flags: int) -> PosTest:
    multiline = bool(flags & _M)
    if name == "AT_BEGINNING_STRING" or (name == "AT_BEGINNING"
                                         and not multiline):
        return lambda text, pos: pos == 0
    if name == "AT_BEGINNING":
        return lambda text, pos: pos == 0 or text[pos - 1] == "\n"
    if name == "AT_END_STRING":
        return lambda text, pos: pos == len(text)
    if name == "AT_END" and not multiline:
        # '$' also matches before a newline that ends the text.
        return lambda text, pos: pos == len(text) or (
            pos == len(text) - 1 and text[pos] == "\n")
    if name == "AT_END":
        return lambda text, pos: pos == len(text) or text[pos] == "\n"
    if name in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
        word = _is_word(flags)
        want = name == "AT_BOUNDARY"

        def boundary(text: str, pos: int) -> bool:
            if not text:
                return False  # as Python's engine: no \b or \B in ""
            before = pos > 0 and word(text[pos - 1])
            after = pos < len(text) and word(text[pos])
            return (before != after) == want
        return boundary
    raise RegexError(f"the anchor {name} is not accepted")
