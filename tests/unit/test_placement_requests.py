"""Flavors as GET /allocation_candidates request groups."""

import json
import os
import random
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.random_config import random_host
from pci_passthrough.model import device_attrs
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement import requests
from pci_passthrough.placement.requests import RequestGroup
from pci_passthrough.placement.tree import build_tree
from pci_passthrough.tracker import matching

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "40"))
GROUP = names.marker_trait("group")


def flavor_set(flavors, specs=("{}",), special=("group",)):
    parsed = devspec.parse_device_specs(list(specs))
    return parse_flavors(list(flavors), known_tags=parsed.tag_names,
                         special_attributes=special)


SPECS = ('{"physical_network": "x", "group": "g", "trusted": "no"}',)


def test_special_attribute_forbidden_unless_named() -> None:
    fs = flavor_set(['{"name": "plain", "physical_network": "physnet1"}',
                     '{"name": "grp", "group": "grp1"}'], SPECS)
    catalog = {("CUSTOM_A", frozenset({names.OWNER_TRAIT}))}
    (plain,) = requests.flavor_groups(fs.get("plain"), {"group"}, catalog
                                      | {("CUSTOM_A", frozenset({
                                          names.OWNER_TRAIT,
                                          names.value_trait(
                                              "physical_network",
                                              "physnet1")}))})
    assert GROUP in plain.forbidden
    assert names.value_trait("physical_network", "physnet1") in \
        plain.required
    specs = fs.get("grp")
    required, forbidden = requests.spec_traits(specs[0], {"group"})
    assert names.value_trait("group", "grp1") in required
    assert GROUP not in forbidden


def test_alternatives_differing_in_one_value_merge_into_in() -> None:
    fs = flavor_set(['{"name": "n", "physical_network": "a"}',
                     '{"name": "n", "physical_network": "b"}',
                     '{"name": "n", "physical_network": "c"}'], SPECS)
    traits = {v: names.value_trait("physical_network", v) for v in "abc"}
    catalog = {("CUSTOM_A", frozenset({names.OWNER_TRAIT, t}))
               for t in traits.values()}
    (group,) = requests.flavor_groups(fs.get("n"), {"group"}, catalog)
    assert group.any_of == set(traits.values())
    assert group.required == {names.OWNER_TRAIT}
    (query,) = requests.group_queries([([group], 1)])
    params = urllib.parse.parse_qs(query)
    assert sorted(params["required_pci0"])[1] == \
        "in:" + ",".join(sorted(traits.values()))


def test_alternatives_on_different_classes_get_a_query_each() -> None:
    a = RequestGroup("CUSTOM_A", frozenset({"CUSTOM_T"}))
    b = RequestGroup("CUSTOM_B", frozenset({"CUSTOM_T"}))
    assert requests.merge_groups([a, b]) == [a, b]
    one = requests.group_queries([([a, b], 1)])
    assert len(one) == 2
    # Two devices: AA, AB, BB (a host may serve the mix).
    two = requests.group_queries([([a, b], 2)])
    assert len(two) == 3
    mixed = urllib.parse.parse_qs(two[1])
    assert mixed["resources_pci0"] == ["CUSTOM_A:1"]
    assert mixed["resources_pci1"] == ["CUSTOM_B:1"]
    assert mixed["group_policy"] == ["none"]


def test_count_gives_one_unit_groups() -> None:
    g = RequestGroup("CUSTOM_A", frozenset({"CUSTOM_T"}),
                     frozenset({"CUSTOM_F"}))
    (query,) = requests.group_queries([([g], 3)])
    params = urllib.parse.parse_qs(query)
    for n in range(3):
        assert params[f"resources_pci{n}"] == ["CUSTOM_A:1"]
        assert params[f"required_pci{n}"] == ["CUSTOM_T,!CUSTOM_F"]
    assert not query.startswith("?")


def test_too_many_combinations_are_refused() -> None:
    groups = [RequestGroup(f"CUSTOM_{i}", frozenset()) for i in range(8)]
    with pytest.raises(exception.PlacementRequestError, match="queries"):
        requests.group_queries([(groups, 4)])


def test_address_pinning_is_refused_and_pf_flavors_get_nothing() -> None:
    fs = flavor_set(['{"name": "pin", "address": "0000:3b:02.0"}',
                     '{"name": "pf", "device_type": "type-PF"}'])
    with pytest.raises(exception.PlacementRequestError, match="pin"):
        requests.request_queries(fs, "pin", 1,
                                 {("CUSTOM_A", frozenset())})
    assert requests.request_queries(
        fs, "pf", 1, {("CUSTOM_A", frozenset({names.OWNER_TRAIT}))}) == []


def test_flavor_resource_class_and_traits_have_novas_meaning() -> None:
    fs = flavor_set(['{"name": "n", "resource_class": "nic-fast", '
                     '"traits": "blue,HW_NIC_SRIOV"}'],
                    ['{"resource_class": "x", "traits": "y"}'])
    (spec,) = fs.get("n")
    assert requests.spec_classes(spec, ["CUSTOM_OTHER"]) == \
        ["CUSTOM_NIC_FAST"]
    required, _ = requests.spec_traits(spec, ())
    assert {"CUSTOM_BLUE", "HW_NIC_SRIOV"} <= required
    assert requests.flavor_classes(fs) == {"CUSTOM_NIC_FAST"}


def test_flavor_traits_cover_every_trait_a_request_names() -> None:
    fs = flavor_set(['{"name": "a", "physical_network": "p"}',
                     '{"name": "b", "group": "g"}'], SPECS,
                    special=("group", "trusted"))
    traits = requests.flavor_traits(fs)
    assert {names.value_trait("physical_network", "p"),
            names.value_trait("group", "g"), GROUP,
            names.marker_trait("trusted"), names.OWNER_TRAIT} <= traits


def _host_view(tmp_path, seed):
    host = random_host(random.Random(seed))
    root = tmp_path / f"sys{seed}"
    st.build_tree(root, host.layout)
    scan = sysfs_scan.scan(str(root))
    specs = devspec.parse_device_specs(list(host.device_specs))
    flavors = parse_flavors(list(host.flavors), known_tags=specs.tag_names,
                            special_attributes=host.special_attributes)
    tree = build_tree("cmp1", scan.devices, specs,
                      flavors.special_attributes)
    attrs = {d.address: device_attrs.device_attrs(d, specs.match(d) or {})
             for d in scan.devices if d.is_vf}
    return tree, flavors, attrs


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(seed=hst.integers(0, 2**32 - 1))
def test_groups_select_exactly_what_the_matcher_serves(tmp_path_factory,
                                                       seed) -> None:
    """The pure half of the Placement property: a provider satisfies a
    flavor's request groups exactly when the matcher gives one of its
    VFs to the flavor (the functional tier asks a real Placement)."""
    tree, flavors, attrs = _host_view(tmp_path_factory.mktemp("h"), seed)
    special = flavors.special_attributes
    for name, specs in flavors.flavors.items():
        groups = requests.flavor_groups(specs, special, tree.catalog())
        for p in tree.providers:
            expected = any(matching.first_mismatch(specs, attrs[vf],
                                                   special) is None
                           for vf in p.vfs)
            got = any(g.served_by(p.resource_class, p.traits)
                      for g in groups)
            assert got == expected, (name, p.name, json.dumps(
                [s.describe() for s in specs]))


_TRAITS = [f"CUSTOM_T{i}" for i in range(5)]
_groups = hst.builds(
    RequestGroup,
    hst.sampled_from(["CUSTOM_A", "CUSTOM_B"]),
    hst.frozensets(hst.sampled_from(_TRAITS), max_size=3),
    hst.frozensets(hst.sampled_from(_TRAITS), max_size=2))


@settings(max_examples=EXAMPLES * 5, derandomize=True, deadline=None)
@given(groups=hst.lists(_groups, max_size=6),
       rc=hst.sampled_from(["CUSTOM_A", "CUSTOM_B"]),
       traits=hst.frozensets(hst.sampled_from(_TRAITS)))
def test_merging_serves_exactly_what_the_groups_serve(groups, rc,
                                                      traits) -> None:
    merged = requests.merge_groups(groups)
    assert len(merged) <= len(groups)
    assert any(g.served_by(rc, traits) for g in merged) == \
        any(g.served_by(rc, traits) for g in groups)
