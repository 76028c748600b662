"""The corpus of malformed configuration entries: each is ONE clear error
(a ConfigError naming the option, the entry and what was expected), never
a traceback, never a hang.  Hand-written cases for every class of defect,
and hypothesis strategies for what nobody thought of."""

import json

import pytest
from config_strategies import entries, json_objects, profile
from hypothesis import given
from hypothesis import strategies as st

from pci_passthrough import exception
from pci_passthrough.config import _json as config_json
from pci_passthrough.config import devspec, flavors
from pci_passthrough.model.device import DEV_TYPE_VF, PciDevice

GOOD_SPEC = json.dumps({"vendor_id": "8086", "group": "g1"})
TAGS = frozenset({"group", "physical_network", "trusted"})


def assert_clear(err: exception.ConfigError, option: str,
                 entry: str | None = None) -> str:
    """One printable line naming the option (and the entry)."""
    text = str(err)
    assert isinstance(err, exception.ConfigError)
    assert f"[pci_passthrough] {option}" in text, text
    if entry is not None:
        assert f"{entry}" in text, text
    assert "\n" not in text and text.isprintable(), text
    assert len(text) < 1200, text
    return text


def refuse_spec(text: str, reason: str) -> None:
    with pytest.raises(exception.InvalidDeviceSpec) as err:
        devspec.parse_device_specs([GOOD_SPEC, text])
    message = assert_clear(err.value, "device_spec", "entry #2")
    assert reason in message, message


# -- device_spec: the JSON itself ------------------------------------------

DEEP_LIST = "[" * 30000 + "]" * 30000
DEEP_OBJECT = '{"a":' * 10000 + "1" + "}" * 10000


@pytest.mark.parametrize("text,reason", [
    ('{"vendor_id": "8086"', "not valid JSON"),
    ("", "not valid JSON"),
    ("   ", "not valid JSON"),
    ("vendor_id=8086", "not valid JSON"),
    ("{'vendor_id': '8086'}", "not valid JSON"),
    ('{"vendor_id": "8086",}', "not valid JSON"),
    ('{"vendor_id": "8086"} {}', "not valid JSON"),
    ('{"vendor_id": 0x8086}', "not valid JSON"),
    ('{"a": NaN}', "NaN is not a number an option can use"),
    ('{"a": Infinity}', "Infinity is not a number"),
    ('{"a": -Infinity}', "-Infinity is not a number"),
    ('[{"a": NaN}]', "NaN is not a number"),
    ('{"address": {"bus": NaN}}', "NaN is not a number"),
    ('{"a": 1e999}', "is too large; expected a finite number"),
    ('{"a": -1e999}', "is too large; expected a finite number"),
    ('{"a": 1' + "0" * 30 + "}", "more than 20 characters"),
    ('{"a": 1.' + "0" * 30 + "}", "more than 20 characters"),
    ('{"a": ' + "9" * 5000 + "}", "more than 20 characters"),
    ('{"vendor_id": "8086", "vendor_id": "15b3"}', "appears twice"),
    ('{"group": "a", "group": "b"}', "'group' appears twice"),
    ('[{"a": 1, "a": 2}]', "appears twice"),
    ('{"address": {"bus": "0a", "bus": "0b"}}', "'bus' appears twice"),
    (DEEP_LIST, "nested too deeply"),
    (DEEP_OBJECT, "nested too deeply"),
    ("[" * 70000, "at most 65536"),
    ("x" * 70000, "at most 65536"),
    ('"8086"', "'8086' is not a JSON object"),
    ("8086", "8086 is not a JSON object"),
    ("null", "null is not a JSON object"),
    ("true", "true is not a JSON object"),
    ("[1]", "object 1"),
    ("[[{}]]", "a JSON list is not a JSON object"),
    ('[{"vendor_id": "8086"}, "x"]', "object 2"),
    ("[" * 500 + "]" * 500, "a JSON list is not a JSON object"),
    ('{"a": "\\ud800"}', "expected printable text"),
    ('{"a": "\\u0000"}', "expected printable text"),
    ('{"a": "\\u001b[31m"}', "expected printable text"),
    ("[" + ", ".join(["{}"] * 1025) + "]", "more than 1024 spec objects"),
])
def test_malformed_json(text, reason):
    refuse_spec(text, reason)


# -- device_spec: selectors --------------------------------------------------

@pytest.mark.parametrize("spec,reason", [
    ({"vendor_id": "80860"}, "vendor_id '80860' is not a 4-digit hex id"),
    ({"vendor_id": "xyz"}, "is not a 4-digit hex id"),
    ({"vendor_id": 8086}, "vendor_id 8086 is not a 4-digit hex id"),
    ({"vendor_id": ""}, "is not a 4-digit hex id"),
    ({"vendor_id": " 8086"}, "is not a 4-digit hex id"),
    ({"vendor_id": "8086 "}, "is not a 4-digit hex id"),
    ({"vendor_id": "0x"}, "is not a 4-digit hex id"),
    ({"vendor_id": "0x10000"}, "is not a 4-digit hex id"),
    ({"vendor_id": "-1"}, "is not a 4-digit hex id"),
    ({"vendor_id": "\uff18\uff10\uff18\uff16"}, "is not a 4-digit hex"),
    ({"vendor_id": None}, "vendor_id null is not a 4-digit hex id"),
    ({"vendor_id": ["8086"]}, "a JSON list is not a 4-digit hex id"),
    ({"vendor_id": True}, "true is not a 4-digit hex id"),
    ({"product_id": "154cc"}, "product_id '154cc' is not"),
    ({"product_id": None}, "product_id null is not"),
    ({"product_id": {"a": 1}}, "a JSON object is not"),
    ({"address": "0000:0a:0b:00.5"}, "too many ':' fields"),
    ({"address": "0000:h4.12:6"}, "not hex"),
    ({"address": "0*:0a:00.0"}, "partial globs"),
    ({"address": ".8"}, "function 8 is over its maximum 7"),
    ({"address": "0000:0a:20.0"}, "slot 20 is over its maximum 1f"),
    ({"address": "0000:100:00.0"}, "bus 100 is over its maximum ff"),
    ({"address": "10000:0a:00.0"}, "domain 10000 is over its maximum"),
    ({"address": "0000:0a:00.1.2"}, "more than one '.'"),
    ({"address": "0" * 100}, "expected at most 64"),
    ({"address": ":::"}, "too many ':' fields"),
    ({"address": "0x0a:00.0"}, "not hex"),
    ({"address": "\u0660\u0660:\u0660\u0660.\u0660"}, "not hex"),
    ({"address": "00:00.\x00"}, "not hex"),
    ({"address": 5}, "address must be a string"),
    ({"address": True}, "address must be a string"),
    ({"address": None}, "not null"),
    ({"address": []}, "not a JSON list"),
    ({"address": 1.5}, "address must be a string"),
    ({"address": {"bus": ["0a"]}}, "must be a regular expression string"),
    ({"address": {"bus": 10}}, "must be a regular expression string"),
    ({"address": {"bus": None}}, "must be a regular expression string"),
    ({"address": {"bus": {"x": "1"}}}, "must be a regular expression"),
    ({"address": {"port": "1"}}, "unknown address field 'port'"),
    ({"address": {"Bus": "0a"}}, "unknown address field 'Bus'"),
    ({"address": {"": "0"}}, "unknown address field ''"),
    ({"address": {"bus": "(0a"}}, "not a valid regular expression"),
    ({"address": {"bus": "0{99999999999999999999}"}}, "too large"),
    ({"address": {"bus": "0{4294967295}"}}, "too large"),
    ({"address": {"bus": "[0-9]{100000}"}}, "over the limit of 512"),
    ({"address": {"bus": "(?:(?:0?){99}){99}x"}}, "over the limit"),
    ({"address": {"slot": "(0)\\1"}}, "backreferences"),
    ({"address": {"slot": "(?=0)"}}, "lookahead"),
    ({"address": {"slot": "(?>0)"}}, "atomic groups"),
    ({"address": {"slot": "0*+"}}, "possessive repeats"),
    ({"address": {"slot": "(" * 300 + ")" * 300}}, "at most 256"),
    ({"address": "0000:0a:00.0", "devname": "eth0"},
     "address and devname cannot be combined"),
    ({"devname": "a" * 16}, "is not a network interface name"),
    ({"devname": ""}, "is not a network interface name"),
    ({"devname": "eth 0"}, "is not a network interface name"),
    ({"devname": "eth/0"}, "is not a network interface name"),
    ({"devname": "eth:0"}, "is not a network interface name"),
    ({"devname": "."}, "is not a network interface name"),
    ({"devname": ".."}, "is not a network interface name"),
    ({"devname": "eth\u00e9"}, "is not a network interface name"),
    ({"devname": "eth\n0"}, "is not a network interface name"),
    ({"devname": "eth\t0"}, "is not a network interface name"),
    ({"devname": " eth0"}, "is not a network interface name"),
    ({"devname": "eth0\x00"}, "is not a network interface name"),
    ({"devname": 5}, "devname 5 is not a network interface name"),
    ({"devname": None}, "devname null is not"),
    ({"devname": ["eth0"]}, "devname a JSON list is not"),
])
def test_bad_selectors(spec, reason):
    refuse_spec(json.dumps(spec), reason)


# -- device_spec: tags -------------------------------------------------------

@pytest.mark.parametrize("key", sorted(devspec.RESERVED_KEYS
                                       - {"vendor_id", "product_id",
                                          "address", "devname"}))
def test_reserved_keys_are_not_tags(key):
    refuse_spec(json.dumps({"vendor_id": "8086", key: "x"}),
                f"'{key}' is reserved")


@pytest.mark.parametrize("spec,reason", [
    ({"": "x"}, "the key '' is not a tag name"),
    ({" ": "x"}, "is not a tag name"),
    ({"a b": "x"}, "is not a tag name"),
    ({"1abc": "x"}, "is not a tag name"),
    ({"x" * 65: "x"}, "is not a tag name"),
    ({"caf\u00e9": "x"}, "is not a tag name"),
    ({"a,b": "x"}, "is not a tag name"),
    ({"-a": "x"}, "is not a tag name"),
    ({"a\n": "x"}, "is not a tag name"),
    ({"a:b": "x"}, "is not a tag name"),
    ({"\x1b[2J": "x"}, "is not a tag name"),
    ({"group": ["a"]}, "tags are strings, numbers or booleans"),
    ({"group": {"a": "b"}}, "tags are strings, numbers or booleans"),
    ({"group": None}, "has the value null"),
    ({"group": "a\nb"}, "expected printable text"),
    ({"group": "a\x00"}, "expected printable text"),
    ({"group": "x" * 256}, "at most 255 characters"),
    ({"group": "\u202e"}, "expected printable text"),
    ({"trusted": "maybe"}, "tag 'trusted' must be a boolean"),
    ({"trusted": 2}, "tag 'trusted' must be a boolean"),
    ({"trusted": ""}, "tag 'trusted' must be a boolean"),
    ({"managed": None}, "has the value null"),
    ({"live_migratable": []}, "tags are strings"),
    ({"remote_managed": "yess"}, "must be a boolean"),
])
def test_bad_tags(spec, reason):
    refuse_spec(json.dumps(spec), reason)


@pytest.mark.parametrize("spec,tags", [
    ({}, {}),
    ({"vendor_id": "*", "product_id": "*"}, {}),
    ({"vendor_id": "0x8086"}, {}),
    ({"address": ""}, {}),
    ({"address": {}}, {}),
    ({"address": " 0000:0a:02.5 "}, {}),
    ({"devname": "ens1f0v5"}, {}),
    ({"physical_network": "physnet1", "trusted": "Yes"},
     {"physical_network": "physnet1", "trusted": "true"}),
    ({"group": 3}, {"group": "3"}),
    ({"group": 1.5}, {"group": "1.5"}),
    ({"group": -7}, {"group": "-7"}),
    ({"_x.y-z": "v"}, {"_x.y-z": "v"}),
    ({"g" * 64: "v"}, {"g" * 64: "v"}),
    ({"group": "x" * 255}, {"group": "x" * 255}),
    ({"group": "caf\u00e9 \u00fcber"}, {"group": "caf\u00e9 \u00fcber"}),
    ({"address": {"bus": "0[0-9a-f]", "function": "(?i)[5A]"}}, {}),
])
def test_valid_specs_still_parse(spec, tags):
    vf = PciDevice(address="0000:0a:02.5", dev_type=DEV_TYPE_VF,
                   vendor_id="8086", product_id="154c", netdev="ens1f0v5",
                   parent_addr="0000:0a:00.0", vf_index=5,
                   pf_netdev="ens1f0")
    assert devspec.parse_device_specs([json.dumps(spec)]).match(vf) == tags


# -- flavor ---------------------------------------------------------------

def refuse_flavor(text: str, reason: str) -> None:
    with pytest.raises(exception.InvalidFlavor) as err:
        flavors.parse_flavors(['{"name": "ok"}', text], known_tags=TAGS,
                              special_attributes=("group",))
    message = assert_clear(err.value, "flavor", "entry #2")
    assert reason in message, message


@pytest.mark.parametrize("name", [
    "", " ", "a,b", "net1,net2", ",", "a b", " net", "net ", "-x", "--help",
    ".x", "x:1", "net:2", "x" * 65, "caf\u00e9", "a\tb", "a\nb", "a/b",
    "a;b", "$x", "a\x00", "\u202enet", "*", "a=b", "'a'",
])
def test_flavor_names_the_command_line_cannot_express(name):
    refuse_flavor(json.dumps({"name": name}), "cannot be used")


@pytest.mark.parametrize("value", [5, None, True, ["a"], {"a": "b"}, 1.5])
def test_flavor_names_that_are_not_strings(value):
    refuse_flavor(json.dumps({"name": value}), "cannot be used")


@pytest.mark.parametrize("obj,reason", [
    ({"vendor_id": "8086"}, 'a flavor needs a "name"'),
    ({"name": "f", "vendr_id": "8086"}, "unknown key 'vendr_id'"),
    ({"name": "f", "": "x"}, "unknown key ''"),
    ({"name": "f", "Name": "x"}, "unknown key 'Name'"),
    ({"name": "f", "group ": "x"}, "unknown key 'group '"),
    ({"name": "f", "devname": "eth0"}, "unknown key 'devname'"),
    ({"name": "f", "dev_type": "type-VF"}, "unknown key 'dev_type'"),
    ({"name": "f", "vendor_id": "80860"}, "vendor_id '80860' is not 4 hex"),
    ({"name": "f", "vendor_id": "808"}, "is not 4 hex"),
    ({"name": "f", "vendor_id": 8086}, "vendor_id 8086 is not 4 hex"),
    ({"name": "f", "vendor_id": None}, "vendor_id null is not 4 hex"),
    ({"name": "f", "vendor_id": "0x8086"}, "is not 4 hex"),
    ({"name": "f", "vendor_id": "GGGG"}, "is not 4 hex"),
    ({"name": "f", "product_id": "zz12"}, "product_id 'zz12' is not 4 hex"),
    ({"name": "f", "product_id": ["154c"]}, "a JSON list is not 4 hex"),
    ({"name": "f", "device_type": "type-XX"}, "is not one of type-PF"),
    ({"name": "f", "device_type": "VF"}, "is not one of"),
    ({"name": "f", "device_type": 1}, "device_type 1 is not one of"),
    ({"name": "f", "device_type": None}, "device_type null is not one"),
    ({"name": "f", "device_type": ""}, "is not one of"),
    ({"name": "f", "numa_policy": "strict"}, "is not one of required"),
    ({"name": "f", "numa_policy": "socket"}, "is not one of required"),
    ({"name": "f", "numa_policy": 1}, "is not one of required"),
    ({"name": "f", "numa_policy": None}, "is not one of required"),
    ({"name": "f", "address": "0000:3b:02"}, "is not a PCI address"),
    ({"name": "f", "address": 5}, "address 5 is not a PCI address"),
    ({"name": "f", "address": None}, "address null is not a PCI"),
    ({"name": "f", "address": "0000:3b:20.0"}, "slot 0x20 is over"),
    ({"name": "f", "address": "zz"}, "is not a PCI address"),
    ({"name": "f", "address": "0" * 100}, "is not a PCI address"),
    ({"name": "f", "address": {"bus": "3b"}}, "a JSON object is not a PCI"),
    ({"name": "f", "numa_node": "one"}, "numa_node 'one' is not a node"),
    ({"name": "f", "numa_node": -1}, "numa_node -1 is not a node"),
    ({"name": "f", "numa_node": 1024}, "expected 0 to 1023"),
    ({"name": "f", "numa_node": "1024"}, "expected 0 to 1023"),
    ({"name": "f", "numa_node": 1.5}, "is not a node number"),
    ({"name": "f", "numa_node": True}, "is not a node number"),
    ({"name": "f", "numa_node": "\u00b2"}, "is not a node number"),
    ({"name": "f", "numa_node": "\u0663"}, "is not a node number"),
    ({"name": "f", "numa_node": None}, "is not a node number"),
    ({"name": "f", "numa_node": " 1"}, "is not a node number"),
    ({"name": "f", "trusted": "maybe"}, "tag 'trusted' must be a boolean"),
    ({"name": "f", "group": []}, "tags are strings, numbers or booleans"),
    ({"name": "f", "group": None}, "has the value null"),
    ({"name": "f", "group": "a\x00"}, "expected printable text"),
    ({"name": "f", "group": "x" * 300}, "at most 255 characters"),
])
def test_bad_flavors(obj, reason):
    refuse_flavor(json.dumps(obj), reason)


@pytest.mark.parametrize("text,reason", [
    ('{"name": ', "not valid JSON"),
    ('["a"]', "a JSON list is not a flavor"),
    ('"net1"', "'net1' is not a flavor"),
    ("null", "null is not a flavor"),
    ("1", "1 is not a flavor"),
    ('{"name": "f", "name": "g"}', "'name' appears twice"),
    ('{"name": "f", "numa_node": NaN}', "NaN is not a number"),
    ('{"name": "f", "numa_node": 1e999}', "is too large"),
    ('{"name": "f", "group": Infinity}', "Infinity is not a number"),
    (DEEP_LIST, "nested too deeply"),
    ("x" * 70000, "at most 65536"),
])
def test_malformed_flavor_json(text, reason):
    refuse_flavor(text, reason)


def test_too_many_flavors():
    with pytest.raises(exception.InvalidFlavor) as err:
        flavors.parse_flavors(['{"name": "f"}'] * 1025, known_tags=(),
                              special_attributes=())
    assert "more than 1024 flavors" in assert_clear(err.value, "flavor")


@pytest.mark.parametrize("name", ["net1", "a", "A_b.c-d", "0", "9x",
                                  "_private", "x" * 64, "port-3"])
def test_expressible_flavor_names_are_accepted(name):
    fs = flavors.parse_flavors([json.dumps({"name": name})], known_tags=(),
                               special_attributes=())
    assert fs.get(name)[0].name == name


# -- special_attributes ------------------------------------------------------

@pytest.mark.parametrize("key", sorted(devspec.RESERVED_KEYS))
def test_special_attributes_cannot_name_a_matching_key(key):
    with pytest.raises(exception.InvalidOption) as err:
        flavors.parse_flavors([], known_tags=TAGS,
                              special_attributes=("group", key))
    text = assert_clear(err.value, "special_attributes", f"#2 '{key}'")
    assert "has a fixed meaning in matching" in text


@pytest.mark.parametrize("value,reason", [
    ("", "is not a tag name"), ("a b", "is not a tag name"),
    ("caf\u00e9", "is not a tag name"), ("x" * 65, "is not a tag name"),
    ("1a", "is not a tag name"), ("a\x00", "is not a tag name"),
    (5, "expected a tag name"), (None, "expected a tag name"),
])
def test_special_attributes_must_be_tag_names(value, reason):
    with pytest.raises(exception.InvalidOption) as err:
        flavors.parse_flavors([], known_tags=(),
                              special_attributes=[value])
    assert reason in assert_clear(err.value, "special_attributes", "#1")


def test_too_many_special_attributes():
    with pytest.raises(exception.InvalidOption) as err:
        flavors.parse_flavors([], known_tags=(), special_attributes=[
            f"t{n}" for n in range(65)])
    assert "more than 64" in assert_clear(err.value, "special_attributes")


def test_special_attributes_not_a_list():
    with pytest.raises(exception.InvalidOption, match="expected a list"):
        flavors.parse_flavors([], known_tags=(), special_attributes="grp")


# -- whatever else: hypothesis -------------------------------------------

@profile(300)
@given(st.lists(entries, min_size=1, max_size=3))
def test_any_device_spec_is_parsed_or_refused_clearly(texts):
    try:
        devspec.parse_device_specs(texts)
    except exception.InvalidDeviceSpec as err:
        assert_clear(err, "device_spec", "entry #")


@profile(300)
@given(st.lists(entries, min_size=1, max_size=3),
       st.lists(st.sampled_from(["group", "trusted", "physical_network",
                                 "numa"]), max_size=3))
def test_any_flavor_is_parsed_or_refused_clearly(texts, tags):
    try:
        flavors.parse_flavors(texts, known_tags=tags,
                              special_attributes=("group",))
    except exception.InvalidFlavor as err:
        assert_clear(err, "flavor", "entry #")


@profile(200)
@given(json_objects)
def test_any_object_as_spec_and_as_flavor(obj):
    text = json.dumps(obj)
    try:
        devspec.parse_device_specs([text])
    except exception.InvalidDeviceSpec as err:
        assert_clear(err, "device_spec", "entry #1")
    try:
        flavors.parse_flavors([text], known_tags=TAGS,
                              special_attributes=("group",))
    except exception.InvalidFlavor as err:
        assert_clear(err, "flavor", "entry #1")


@profile(200)
@given(st.lists(st.one_of(st.text(max_size=12),
                          st.sampled_from(sorted(devspec.RESERVED_KEYS))),
                max_size=4))
def test_any_special_attributes(values):
    try:
        flavors.parse_flavors([], known_tags=TAGS,
                              special_attributes=values)
    except exception.InvalidOption as err:
        assert_clear(err, "special_attributes", "#")


@profile(200)
@given(st.text(max_size=200), st.integers(10, 120))
def test_shorten_is_one_printable_bounded_line(text, limit):
    shown = config_json.shorten(text, limit)
    assert len(shown) <= limit
    assert shown.isprintable() and "\n" not in shown
