"""Address regexes: the linear-time engine means what re.match means, and
refuses what it cannot match in bounded time."""

import json
import re

import pytest
from config_strategies import patterns, profile, subjects
from hypothesis import assume, given

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.model._address_regex import (
    MAX_PATTERN_CHARS,
    MAX_STATES,
    FieldRegex,
    RegexError,
)
from pci_passthrough.model.device import DEV_TYPE_VF, PciDevice


def compiled(pattern: str) -> FieldRegex | None:
    try:
        re.compile(pattern)
    except re.error:
        return None
    try:
        return FieldRegex(pattern)
    except RegexError:
        return None


@profile(600)
@given(patterns, subjects)
def test_matches_exactly_when_re_match_does(pattern, subject):
    regex = compiled(pattern)
    assume(regex is not None)
    assert regex.match(subject) == bool(re.match(pattern, subject)), (
        pattern, subject)


# Patterns an operator writes in Nova's dict form, and fields they meet.
NOVA_PATTERNS = ["0000", ".*", "0[0-9]", "[0-9a-f]{2}", "0a|0b", "(0a)",
                 "[1-5]", "0{2}[0-9a-f]{2}", "^03$", "(?i)0A", "\\d+",
                 "1000[0-9]", "[^0]", "0?a", "(?:0|1)+$", "", "ff\\Z",
                 "\\b0a\\b", "[.:]0"]
FIELDS = ["0000", "0001", "10000", "0a", "0b", "ff", "00", "1f", "3", "7",
          "0", "03", ""]


@pytest.mark.parametrize("pattern", NOVA_PATTERNS)
def test_operator_patterns_agree_with_re_on_every_field(pattern):
    regex = FieldRegex(pattern)
    assert [regex.match(f) for f in FIELDS] == [
        bool(re.match(pattern, f)) for f in FIELDS]


# What re.match cannot finish (10**8 and more backtracking steps on the
# 4-digit domain, growing exponentially with the counts) and the engine
# answers at once.
@pytest.mark.parametrize("pattern,subject,expected", [
    ("(?:(?:0?){15}){15}x", "0000", False),
    ("(?:(?:0?){15}){15}0000", "0000", True),
    ("(?:0*)*(?:0*)*(?:0*)*(?:0*)*x", "00000000", False),
    ("(?:0|00|000)*(?:0|00)*x", "00000000", False),
    ("(?:\\d?){100}(?:\\d?){100}x", "0000", False),
    ("(?:[0-9a-f]*[0-9a-f]*)*y", "ffffffff", False),
])
def test_patterns_that_make_re_backtrack_for_ever(pattern, subject,
                                                  expected):
    assert FieldRegex(pattern).match(subject) is expected


@pytest.mark.parametrize("pattern,reason", [
    ("(0)\\1", "backreferences"),
    ("(?P<d>0)(?P=d)", "backreferences"),
    ("(?=0)0", "lookahead or lookbehind"),
    ("(?<=0)0", "lookahead or lookbehind"),
    ("(?!0)", "negative lookahead"),
    ("(?<!0)1", "negative lookahead"),
    ("(0)?(?(1)a|b)", "conditionals"),
    ("(?>0+)", "atomic groups"),
    ("0*+", "possessive repeats"),
    ("0++1", "possessive repeats"),
    ("0?+", "possessive repeats"),
    ("0{1000}", f"over the limit of {MAX_STATES}"),
    ("(?:0{100}){100}", f"over the limit of {MAX_STATES}"),
    ("(?:(?:(?:0?){50}){50}){50}", f"over the limit of {MAX_STATES}"),
    ("[0-9]{513}", f"over the limit of {MAX_STATES}"),
    ("0{4294967295}", "too large"),
    ("0{99999999999999999999}", "too large"),
    ("0{1,4294967296}", "too large"),
    ("0" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS}"),
    ("(" * 200 + ")" * 200, f"at most {MAX_PATTERN_CHARS}"),
    ("(" * 100 + ")" * 100 + "0{600}", f"over the limit of {MAX_STATES}"),
    ("(0", "not a valid regular expression"),
    ("0{3,2}", "not a valid regular expression"),
    ("*", "not a valid regular expression"),
    ("[z-a]", "not a valid regular expression"),
    ("(?L)0", "not a valid regular expression"),
    ("\\z", "not a valid regular expression"),
    ("(?P<1>0)", "not a valid regular expression"),
])
def test_refused_patterns_say_why(pattern, reason):
    with pytest.raises(RegexError, match=re.escape(reason)):
        FieldRegex(pattern)


@pytest.mark.parametrize("value", [5, None, ["0a"], {"a": 1}, 1.5, True])
def test_a_pattern_must_be_a_string(value):
    with pytest.raises(RegexError, match="expected a regular expression "
                                         "string"):
        FieldRegex(value)


def test_empty_repeated_group_with_a_huge_count_is_cheap():
    # Expanding 4e9 empty copies would never end; they are nothing.
    assert FieldRegex("(?:){4000000000}0").match("0a")


def test_bounds_accept_what_they_announce():
    assert FieldRegex("0" * MAX_PATTERN_CHARS).match("0" * 300)
    assert FieldRegex(f"0{{{MAX_STATES - 1}}}").match("0" * MAX_STATES)


def test_results_are_cached_per_field_value_and_bounded():
    regex = FieldRegex("[0-9a-f]{2}")
    for n in range(5000):
        regex.match(f"{n:x}")
    assert regex.cached_results == 4096


def test_equality_follows_the_pattern():
    assert FieldRegex("0a") == FieldRegex("0a")
    assert FieldRegex("0a") != FieldRegex("0b")
    assert len({FieldRegex("0a"), FieldRegex("0a")}) == 1
    assert repr(FieldRegex("0a")) == "FieldRegex('0a')"


VMD_VF = PciDevice(address="10000:01:00.1", dev_type=DEV_TYPE_VF,
                   vendor_id="8086", product_id="1889", netdev="vmdvf1",
                   parent_addr="10000:01:00.0")


def test_device_spec_uses_the_engine_end_to_end():
    specs = devspec.parse_device_specs([json.dumps(
        {"address": {"domain": "(?:(?:1?){15}){15}0000",
                     "function": "[1-3]"}, "group": "g"})])
    assert specs.match(VMD_VF) == {"group": "g"}


@pytest.mark.parametrize("pattern,reason", [
    ("(?:(?:(?:0?){50}){50}){50}", "over the limit"),
    ("0{99999999999999999999}", "too large"),
    ("(0)\\1", "backreferences"),
    ("(?=0)", "lookahead"),
    ("x" * 300, "at most 256"),
])
def test_device_spec_refuses_with_option_and_entry(pattern, reason):
    with pytest.raises(exception.InvalidDeviceSpec) as err:
        devspec.parse_device_specs(
            [json.dumps({"address": {"bus": pattern}})])
    text = str(err.value)
    assert "[pci_passthrough] device_spec, entry #1" in text
    assert "the bus field" in text and reason in text
    assert len(text) < 600
