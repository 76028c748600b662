"""Hypothesis strategies and settings for the configuration corpus.

The unit tier runs a bounded, derandomised (so seeded and repeatable)
number of examples; PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES raises it for a
longer run on demand:

    PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES=20000 pytest tests/unit -k config
"""

import json
import os
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def examples(default: int) -> int:
    """``default`` examples, or as many as the environment asks for."""
    return int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES",
                              default))


def profile(default: int) -> settings:
    return settings(max_examples=examples(default), derandomize=True,
                    deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


# -- regular expressions over the alphabet of address fields -------------

SUBJECT_ALPHABET = "0123456789abcdefABCDEF_x \n."
subjects = st.text(SUBJECT_ALPHABET, max_size=9)

_atoms = st.one_of(
    st.sampled_from("0123456789abcdefABCDEFx_ ").map(re.escape),
    st.sampled_from([
        ".", "[0-9]", "[a-f]", "[A-F]", "[^0-3]", "[0-9a-f]", "[^a-f\\d]",
        "\\d", "\\D", "\\w", "\\W", "\\s", "\\S", "[\\w.]", "[_x-z]",
        "\\.", "\\n", "^", "$", "\\A", "\\Z", "\\b", "\\B", "()", "(?:)",
    ]),
)
_QUANTIFIERS = ["*", "+", "?", "{2}", "{0,2}", "{1,}", "{2,3}", "{0}",
                "*?", "+?", "??", "{1,2}?"]


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}|{p[1]}"),
        inner.map(lambda p: f"({p})"),
        st.tuples(inner, st.sampled_from(_QUANTIFIERS)).map(
            lambda p: f"(?:{p[0]}){p[1]}"),
        st.tuples(st.sampled_from("iasmx"), inner).map(
            lambda p: f"(?{p[0]}:{p[1]})"),
    )


_bodies = st.recursive(_atoms, _extend, max_leaves=10)
patterns = st.tuples(st.sampled_from(["", "(?i)", "(?a)", "(?s)", "(?m)",
                                      "(?ia)"]), _bodies).map("".join)


# -- JSON-ish garbage for the option values -------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["8086", "*", "0x15b3", "0000:0a:00.1", "*:0a:02.*",
                     "ens1f0", "type-VF", "required", "yes", "group",
                     "address", "name", "a,b", "-x", " x", "x:1", "", "..",
                     "é", "\x00", "\ud800", "a" * 300]),
)
_KEYS = ["vendor_id", "product_id", "address", "devname", "name",
         "device_type", "numa_policy", "numa_node", "dev_type", "group",
         "physical_network", "trusted", "managed", "domain", "bus",
         "slot", "function", "", " ", "a b", "x" * 70, "é"]
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(
            max_size=8)), inner, max_size=4)),
    max_leaves=8)
json_objects = st.dictionaries(
    st.one_of(st.sampled_from(_KEYS), st.text(max_size=8)), _values,
    max_size=5)


def _dumps(value: object) -> str:
    return json.dumps(value)


def _mutate(text: str, cut: int, insert: str) -> str:
    cut = cut % (len(text) + 1)
    return text[:cut] + insert + text[cut:]


#: Entries: valid-looking JSON, JSON of other shapes, and broken text.
entries = st.one_of(
    json_objects.map(_dumps),
    st.lists(json_objects, max_size=3).map(_dumps),
    _values.map(_dumps),
    st.tuples(json_objects.map(_dumps), st.integers(0, 200),
              st.sampled_from(["{", "}", "[", "]", ",", ":", '"', "NaN",
                               "Infinity", "-Infinity", "1e999", "\\",
                               "\x00", "\ud800", " ", "//"])).map(
        lambda t: _mutate(*t)),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.text(max_size=40),
)
