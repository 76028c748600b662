"""Nova's device_spec syntax and semantics, and its errors."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.model.device import DEV_TYPE_PF, DEV_TYPE_VF, PciDevice
from pci_passthrough.model.pci_address import (
    address_sort_key,
    normalize_address,
)

PF = PciDevice(address="0000:0a:00.0", dev_type=DEV_TYPE_PF,
               vendor_id="8086", product_id="1572", netdev="ens1f0")
VF = PciDevice(address="0000:0a:02.5", dev_type=DEV_TYPE_VF,
               vendor_id="8086", product_id="154c", netdev="ens1f0v5",
               parent_addr="0000:0a:00.0", vf_index=5, pf_netdev="ens1f0")
OTHER = PciDevice(address="0001:81:10.1", dev_type=DEV_TYPE_VF,
                  vendor_id="15b3", product_id="101e", netdev="enp129v1",
                  parent_addr="0001:81:00.0", vf_index=1,
                  pf_netdev="enp129")


def specs(*objs: object) -> devspec.DeviceSpecList:
    return devspec.parse_device_specs([json.dumps(o) for o in objs])


@pytest.mark.parametrize("spec,matches", [
    ({}, {PF, VF, OTHER}),
    ({"vendor_id": "8086"}, {PF, VF}),
    ({"vendor_id": "8086", "product_id": "154C"}, {VF}),
    ({"vendor_id": "0x15b3"}, {OTHER}),
    ({"vendor_id": "*", "product_id": "101e"}, {OTHER}),
    ({"address": "*:0a:02.*"}, {VF}),
    ({"address": ":0a:02."}, {VF}),
    ({"address": ".5"}, {VF}),
    ({"address": "0001:81:10.1"}, {OTHER}),
    ({"address": " 0000:0a:02.5 "}, {VF}),
    ({"address": {"domain": "0001"}}, {OTHER}),
    ({"address": {"bus": "0a", "slot": "0[0-2]"}}, {PF, VF}),
    ({"address": {"function": "[1-5]"}}, {VF, OTHER}),
    ({"devname": "ens1f0v5"}, {VF}),
])
def test_selectors(spec, matches):
    parsed = specs(spec)
    assert {d for d in (PF, VF, OTHER) if parsed.match(d) is not None} == \
        matches


def test_pf_address_covers_its_vfs():
    parsed = specs({"address": "0000:0a:00.0"})
    assert parsed.match(PF) == {} and parsed.match(VF) == {}
    assert parsed.match(OTHER) is None


def test_pf_devname_covers_its_vfs():
    parsed = specs({"devname": "ens1f0", "physical_network": "physnet1"})
    assert parsed.match(VF) == {"physical_network": "physnet1"}
    assert parsed.match(PF) is not None
    assert parsed.match(OTHER) is None


def test_first_matching_spec_decides_the_tags():
    parsed = specs({"address": "0000:0a:02.5", "group": "grp1"},
                   {"vendor_id": "8086", "physical_network": "physnet1"})
    assert parsed.match(VF) == {"group": "grp1"}
    assert parsed.match(PF) == {"physical_network": "physnet1"}
    assert parsed.tag_names == {"group", "physical_network"}


def test_list_values_and_repeated_option_values_keep_their_order():
    parsed = devspec.parse_device_specs([
        json.dumps([{"devname": "ens1f0v5", "physical_network": "a"},
                    {"vendor_id": "8086", "physical_network": "b"}]),
        json.dumps({"physical_network": "c"}),
    ])
    assert len(parsed) == 3
    assert [parsed.match(d)["physical_network"]  # type: ignore[index]
            for d in (VF, PF, OTHER)] == ["a", "b", "c"]


def test_no_spec_means_nothing_assignable():
    assert devspec.parse_device_specs([]).match(VF) is None


@pytest.mark.parametrize("value,expected", [
    ("yes", "true"), ("No", "false"), ("1", "true"), ("0", "false"),
    (True, "true"), (False, "false"), ("TRUE", "true")])
@pytest.mark.parametrize("tag", ["trusted", "managed", "live_migratable"])
def test_boolean_like_tags_are_normalised(tag, value, expected):
    assert specs({tag: value}).match(VF) == {tag: expected}


def test_other_tags_keep_their_text():
    assert specs({"physical_network": "PhysNet1", "numa": 3}).match(VF) \
        == {"physical_network": "PhysNet1", "numa": "3"}


@pytest.mark.parametrize("spec,reason", [
    ({"address": "0000:0a:0b:00.5"}, "too many ':' fields"),
    ({"address": "0000:h4.12:6"}, "not hex"),
    ({"address": "0*:0a:00.0"}, "partial globs"),
    ({"address": "0000:0a:00.8"}, "function 8 is over its maximum 7"),
    ({"address": "0000:0a:20.0"}, "slot 20 is over its maximum 1f"),
    ({"address": "0000:100:00.0"}, "bus 100 is over its maximum ff"),
    ({"address": "10000:0a:00.0"}, "domain 10000 is over its maximum"),
    ({"address": "0000:0a:00.1.2"}, "more than one '.'"),
    ({"vendor_id": "80860"}, "vendor_id '80860' is not a 4-digit hex id"),
    ({"product_id": "xyz"}, "product_id 'xyz' is not a 4-digit hex id"),
    ({"vendor_id": 8086}, "vendor_id 8086 is not a 4-digit hex id"),
    ({"address": "0000:0a:00.0", "devname": "eth0"},
     "address and devname cannot be combined"),
    ({"address": {"bus": ["0a"]}}, "must be a regular expression string"),
    ({"address": {"bus": "(0a"}}, "not a valid regular expression"),
    ({"address": {"port": "1"}}, "unknown address field 'port'"),
    ({"address": 5}, "address must be a string"),
    ({"devname": "a" * 16}, "is not a network interface name"),
    ({"trusted": "maybe"}, "tag 'trusted' must be a boolean"),
    ({"physical_network": ["a"]}, "tags are strings, numbers or booleans"),
])
def test_invalid_specs_name_option_entry_and_expectation(spec, reason):
    good = json.dumps({"vendor_id": "8086"})
    with pytest.raises(exception.InvalidDeviceSpec) as err:
        devspec.parse_device_specs([good, json.dumps(spec)])
    message = str(err.value)
    assert "[pci_passthrough] device_spec" in message
    assert "entry #2" in message
    assert reason in message


@pytest.mark.parametrize("text,reason", [
    ('{"vendor_id": "8086"', "not valid JSON"),
    ('"8086"', "is not a JSON object"),
    ('[{"vendor_id": "8086"}, 3]', "object 2"),
])
def test_malformed_json_is_refused(text, reason):
    with pytest.raises(exception.InvalidDeviceSpec, match=reason):
        devspec.parse_device_specs([text])


def test_long_entries_are_shortened_in_errors():
    text = json.dumps({"address": "zz", "note": "x" * 200})
    with pytest.raises(exception.InvalidDeviceSpec) as err:
        devspec.parse_device_specs([text])
    assert "..." in str(err.value) and len(str(err.value)) < 400


@given(hst.integers(0, 0xFFFFF), hst.integers(0, 0xFF),
       hst.integers(0, 0x1F), hst.integers(0, 7), hst.booleans(),
       hst.booleans())
def test_normalize_address_round_trips(dom, bus, slot, func, prefix, upper):
    text = f"{dom:04x}:{bus:02x}:{slot:02x}.{func}"
    shown = text.upper() if upper else text
    if prefix:
        shown = "0x" + shown
    assert normalize_address(shown) == text
    assert address_sort_key(text) == (dom, bus, slot, func)


@pytest.mark.parametrize("text", ["0000:0a:00", "0a:00.0", "0000:0a:20.0",
                                  "0000:0a:00.8", "junk"])
def test_normalize_address_refuses_partial_or_invalid(text):
    with pytest.raises(ValueError, match=r"PCI address|over"):
        normalize_address(text)


def test_vmd_domain_devices_are_selected_by_the_dict_form_or_devname():
    vmd = PciDevice(address="10000:01:00.1", dev_type=DEV_TYPE_VF,
                    vendor_id="8086", product_id="1889", netdev="vmdvf1",
                    parent_addr="10000:01:00.0")
    assert specs({"address": {"domain": "1000[0-9]"}}).match(vmd) == {}
    assert specs({"devname": "vmdvf1"}).match(vmd) == {}
    assert specs({"address": {"domain": "0000"}}).match(vmd) is None
