"""PCI flavors: parsing, validation, and the special-attribute rule."""

import json
import logging

import pytest

from pci_passthrough import exception
from pci_passthrough.config import flavors
from pci_passthrough.model import device_attrs
from pci_passthrough.model.device import DEV_TYPE_PF, DEV_TYPE_VF, PciDevice
from pci_passthrough.tracker import matching

TAGS = frozenset({"group", "physical_network", "trusted"})


def parse(*objs, special=("group",), tags=TAGS):
    return flavors.parse_flavors([json.dumps(o) for o in objs],
                                 known_tags=tags,
                                 special_attributes=special)


def attrs(dev, tags=None):
    return device_attrs.device_attrs(dev, tags or {})


# The rule from the design discussion, as written there.
DEV1 = PciDevice(address="0000:00:00.1", dev_type=DEV_TYPE_VF,
                 vendor_id="0001", product_id="0001")
DEV2 = PciDevice(address="0000:00:01.1", dev_type=DEV_TYPE_VF,
                 vendor_id="0001", product_id="0002")
DEV1_TAGS = {"group": "grp1"}


@pytest.mark.parametrize("flavor,expected", [
    ({"name": "flv1", "vendor_id": "0001"}, {"Dev2"}),
    ({"name": "flv2", "vendor_id": "0001", "group": "grp1"}, {"Dev1"}),
    ({"name": "flv3", "group": "grp1"}, {"Dev1"}),
])
def test_special_attribute_rule_from_the_design(flavor, expected):
    fs = parse(flavor)
    spec = fs.get(flavor["name"])
    got = set()
    for label, dev, tags in (("Dev1", DEV1, DEV1_TAGS), ("Dev2", DEV2, {})):
        if matching.first_mismatch(spec, attrs(dev, tags),
                                   fs.special_attributes) is None:
            got.add(label)
    assert got == expected


def test_dev1_is_never_given_to_flv1_and_the_reason_says_why():
    fs = parse({"name": "flv1", "vendor_id": "0001"})
    reason = matching.first_mismatch(fs.get("flv1"), attrs(DEV1, DEV1_TAGS),
                                     fs.special_attributes)
    assert reason == ("carries the special attribute group=grp1, which the "
                      "flavor does not name")


def test_ordinary_attributes_accept_any_value_when_not_named():
    fs = parse({"name": "f", "vendor_id": "0001"}, special=())
    assert matching.first_mismatch(fs.get("f"), attrs(DEV1, DEV1_TAGS),
                                   fs.special_attributes) is None


def test_special_attribute_needs_an_equal_value():
    fs = parse({"name": "f", "group": "grp2"})
    reason = matching.first_mismatch(fs.get("f"), attrs(DEV1, DEV1_TAGS),
                                     fs.special_attributes)
    assert reason == "group is grp1; the flavor asks for grp2"


def test_pf_only_for_a_flavor_asking_type_pf():
    pf = PciDevice(address="0000:3b:00.0", dev_type=DEV_TYPE_PF,
                   vendor_id="8086", product_id="1572")
    fs = parse({"name": "vf", "vendor_id": "8086"},
               {"name": "pf", "vendor_id": "8086",
                "device_type": "type-PF"})
    assert "does not ask for device_type type-PF" in \
        matching.first_mismatch(fs.get("vf"), attrs(pf), ())
    assert matching.first_mismatch(fs.get("pf"), attrs(pf), ()) is None


def test_values_compare_case_insensitively():
    dev = PciDevice(address="0000:3b:02.0", dev_type=DEV_TYPE_VF,
                    vendor_id="8086", product_id="154c")
    fs = parse({"name": "f", "product_id": "154C",
                "physical_network": "PhysNet1"})
    assert matching.first_mismatch(
        fs.get("f"), attrs(dev, {"physical_network": "physnet1"}),
        ()) is None


def test_boolean_tags_compare_normalised():
    dev = PciDevice(address="0000:3b:02.0", dev_type=DEV_TYPE_VF,
                    vendor_id="8086", product_id="154c")
    fs = parse({"name": "f", "trusted": "yes"})
    assert matching.first_mismatch(fs.get("f"),
                                   attrs(dev, {"trusted": "true"}),
                                   ()) is None


def test_same_name_flavors_are_alternatives():
    fs = parse({"name": "net", "product_id": "0001", "group": "grp1"},
               {"name": "net", "product_id": "0002"})
    assert len(fs.get("net")) == 2
    for dev, tags in ((DEV1, DEV1_TAGS), (DEV2, {})):
        assert matching.first_mismatch(fs.get("net"), attrs(dev, tags),
                                       fs.special_attributes) is None


def test_address_or_numa_node_warns_naming_the_flavor(caplog):
    with caplog.at_level(logging.WARNING):
        parse({"name": "pinned", "address": "0000:3b:02.0"},
              {"name": "node", "numa_node": 1})
    text = caplog.text
    assert "pinned names address" in text and "node names numa_node" in text


@pytest.mark.parametrize("obj,reason", [
    ({"name": "f", "vendr_id": "8086"},
     "flavor 'f' has the unknown key 'vendr_id'; known keys: address, "
     "device_type, group"),
    ({"vendor_id": "8086"}, 'a flavor needs a "name"'),
    ({"name": "f", "vendor_id": "80860"}, "vendor_id '80860' is not 4 hex"),
    ({"name": "f", "product_id": "zz12"}, "product_id 'zz12' is not 4 hex"),
    ({"name": "f", "device_type": "type-XX"},
     "device_type 'type-XX' is not one of type-PF, type-VF, type-PCI"),
    ({"name": "f", "numa_policy": "strict"},
     "numa_policy 'strict' is not one of required, legacy, preferred"),
    ({"name": "f", "numa_policy": "socket"},
     "numa_policy 'socket' is not one of required, legacy, preferred"),
    ({"name": "f", "address": "0000:3b:02"}, "is not a PCI address"),
    ({"name": "f", "numa_node": "one"}, "numa_node 'one' is not a node"),
    ({"name": "f", "trusted": "maybe"}, "tag 'trusted' must be a boolean"),
])
def test_invalid_flavors_name_option_entry_and_expectation(obj, reason):
    with pytest.raises(exception.InvalidFlavor) as err:
        parse({"name": "ok"}, obj)
    message = str(err.value)
    assert "[pci_passthrough] flavor, entry #2" in message
    assert reason in message


@pytest.mark.parametrize("text,reason", [
    ('{"name": ', "not valid JSON"), ('["a"]', "expected a JSON object")])
def test_malformed_flavor_json(text, reason):
    with pytest.raises(exception.InvalidFlavor, match=reason):
        flavors.parse_flavors([text], known_tags=(), special_attributes=())


def test_unknown_flavor_lists_the_known_ones():
    fs = parse({"name": "a"}, {"name": "b"})
    with pytest.raises(exception.UnknownFlavor, match="known flavors: a, b"):
        fs.get("c")


def test_inline_spec_follows_the_same_rules():
    fs = parse({"name": "a"})
    (spec,) = fs.inline({"vendor_id": "0001"}, port=3)
    assert matching.first_mismatch((spec,), attrs(DEV1, DEV1_TAGS),
                                   fs.special_attributes) is not None
    with pytest.raises(exception.InvalidPortRequest,
                       match=r"port 3.*unknown key 'colour'"):
        fs.inline({"colour": "red"}, port=3)


@pytest.mark.parametrize("policy,node,cells,ok", [
    (None, 0, {0}, True), (None, 1, {0}, False), (None, None, {0}, True),
    ("legacy", None, {0}, True), ("required", None, {0}, False),
    ("required", 0, {0, 1}, True), ("preferred", 1, {0}, True),
    ("required", 1, None, True),
])
def test_numa_policies(policy, node, cells, ok):
    assert (matching.numa_mismatch(policy, node, cells) is None) is ok
