"""A macvtap port's request group for nova's scheduler
(pci_passthrough.nova.request_groups, SriovPlugin.request_group): the
class a PCI flavor says, its traits, the special-attribute rule as
forbidden traits, None where Placement cannot say the flavor; and, with
hypothesis, hostile PCI requests and flavors: a group made only of valid
Placement names, or None, or an InvalidPortRequest, nothing else."""

import re
import types
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import opts
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.model import placement_names as names
from pci_passthrough.nova.ports import FLAVOR_EXTRA_SPEC, PortPolicy
from pci_passthrough.nova.request_groups import PortGroup, port_group
from pci_passthrough.nova.sriov_plugin import SriovPlugin

RC = "CUSTOM_MACVTAP_VF"
FLAVORS = [
    f'{{"name": "placed", "physical_network": "physnet1", '
    f'"resource_class": "{RC}"}}',
    f'{{"name": "grp1", "physical_network": "physnet1", "group": "grp1", '
    f'"resource_class": "{RC}"}}',
    '{"name": "e810", "vendor_id": "8086", "product_id": "1889"}',
    # Alternatives on two classes: not one group.
    '{"name": "either", "resource_class": "CUSTOM_A"}',
    '{"name": "either", "resource_class": "CUSTOM_B"}',
    # Alternatives that come to the same group are one.
    f'{{"name": "same", "resource_class": "{RC}", "device_type": '
    f'"type-VF"}}',
    f'{{"name": "same", "resource_class": "{RC}"}}',
    f'{{"name": "pinned", "address": "0000:5e:01.0", '
    f'"resource_class": "{RC}"}}',
    '{"name": "pf", "device_type": "type-PF", "resource_class": "CUSTOM_PF"}',
]
TAGS = {"physical_network", "group", "trusted"}
POLICY = PortPolicy(parse_flavors(FLAVORS, known_tags=TAGS,
                                  special_attributes=["group"]))
MARKER = names.marker_trait("group")
PHYSNET1 = names.value_trait("physical_network", "physnet1")
_CUSTOM = re.compile(r"CUSTOM_[A-Z0-9_]{1,248}\Z")


def pci_request(physnet="physnet1", **spec):
    return types.SimpleNamespace(
        requester_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()),
        count=1, spec=[{"physical_network": physnet, **spec}])


def flavor(**extra_specs):
    return types.SimpleNamespace(name="m1", extra_specs=extra_specs)


def named(pci_flavor):
    return flavor(**{FLAVOR_EXTRA_SPEC: pci_flavor})


def test_a_flavor_naming_its_class_is_one_group():
    group = port_group(pci_request(), named("placed"), POLICY)
    assert group == PortGroup(RC, frozenset({names.OWNER_TRAIT, PHYSNET1}),
                              frozenset({MARKER}))
    assert group.resources == {RC: 1}


def test_a_flavor_naming_the_special_attribute_requires_its_value():
    group = port_group(pci_request(), named("grp1"), POLICY)
    assert group.required == {names.OWNER_TRAIT, PHYSNET1,
                              names.value_trait("group", "grp1")}
    assert group.forbidden == frozenset()


def test_vendor_and_product_give_novas_default_class():
    group = port_group(pci_request(), named("e810"), POLICY)
    assert group.resource_class == "CUSTOM_PCI_8086_1889"
    assert MARKER in group.forbidden


def test_the_physnet_option_chooses_as_the_compute_does():
    policy = PortPolicy(POLICY.flavors, {"physnet1": "placed"})
    assert port_group(pci_request(), flavor(), policy).resource_class == RC
    # The extra spec first, as on the compute.
    assert port_group(pci_request(), named("grp1"), policy).forbidden \
        == frozenset()


def test_alternatives_that_come_to_one_group_are_one():
    assert port_group(pci_request(), named("same"), POLICY).resource_class \
        == RC


@pytest.mark.parametrize("pci_flavor,why", [
    (None, "the inline spec names no class"),
    ("either", "alternatives on two classes"),
    ("pinned", "a pinned address is no Placement query"),
    ("pf", "no VF serves it"),
])
def test_a_flavor_placement_cannot_say_has_no_group(pci_flavor, why):
    extra = flavor() if pci_flavor is None else named(pci_flavor)
    assert port_group(pci_request(), extra, POLICY) is None, why


def test_a_bad_extra_spec_is_refused_naming_the_port():
    request = pci_request()
    with pytest.raises(exception.InvalidPortRequest,
                       match=f"{request.requester_id}.*not a configured"):
        port_group(request, named("nope"), POLICY)


def conf_with(flavors, physnet_flavors=None):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="pci-passthrough-test", default_config_files=[])
    conf.set_override("device_spec", [
        '{"vendor_id": "8086", "physical_network": "physnet1", '
        '"group": "grp1"}'], group="pci_passthrough")
    conf.set_override("flavor", flavors, group="pci_passthrough")
    conf.set_override("special_attributes", ["group"],
                      group="pci_passthrough")
    if physnet_flavors:
        conf.set_override("physnet_flavors", physnet_flavors,
                          group="pci_passthrough")
    return conf


def test_the_plugin_says_it_without_a_host():
    # nova-api and nova-conductor: the plugin is constructed, never
    # started; its group and traits come from the configuration alone.
    plugin = SriovPlugin(conf_with(FLAVORS[:2], {"physnet1": "placed"}))
    assert plugin.agent is None
    assert plugin.request_group(pci_request(), flavor()) == {
        "resources": {RC: 1},
        "required_traits": {names.OWNER_TRAIT, PHYSNET1},
        "forbidden_traits": {MARKER}}
    assert plugin.request_group(pci_request("physnet9"), flavor()) is None
    assert {MARKER, PHYSNET1, names.value_trait("group", "grp1")} <= \
        plugin.placement_traits()


# -- hostile input --------------------------------------------------------

_text = st.text(max_size=12)
_values = st.one_of(st.none(), st.booleans(), st.integers(), _text,
                    st.lists(_text, max_size=2),
                    st.dictionaries(_text, _text, max_size=2))
_flavor_names = st.sampled_from(["placed", "grp1", "e810", "either",
                                 "same", "pinned", "pf", "nope", ""])


@st.composite
def hostile_requests(draw):
    spec = draw(st.one_of(
        _values,
        st.lists(st.dictionaries(
            st.sampled_from(["physical_network", "trusted", "rp_uuids",
                             "x"]), _values, max_size=3), max_size=2),
        st.builds(lambda p, t: [{"physical_network": p, "trusted": t}],
                  st.one_of(_text, st.sampled_from(["physnet1"])),
                  _values)))
    requester = draw(st.one_of(st.none(), _text,
                               st.builds(lambda: str(uuid.uuid4()))))
    return types.SimpleNamespace(requester_id=requester, spec=spec,
                                 request_id=str(uuid.uuid4()))


@st.composite
def hostile_flavors(draw):
    specs = draw(st.one_of(
        _values,
        st.dictionaries(
            st.sampled_from([FLAVOR_EXTRA_SPEC,
                             f"{FLAVOR_EXTRA_SPEC}:physnet1", "other"]),
            st.one_of(_flavor_names, _values), max_size=2)))
    return types.SimpleNamespace(extra_specs=specs)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(request=hostile_requests(), nova_flavor=hostile_flavors(),
       physnet_flavor=st.one_of(st.none(), _flavor_names.filter(
           lambda n: n not in ("nope", ""))))
def test_hostile_requests_give_a_valid_group_none_or_a_refusal(
        request, nova_flavor, physnet_flavor):
    policy = PortPolicy(POLICY.flavors, {"physnet1": physnet_flavor}
                        if physnet_flavor else {})
    try:
        group = port_group(request, nova_flavor, policy)
    except exception.InvalidPortRequest as exc:
        assert str(exc)
        return
    if group is None:
        return
    assert _CUSTOM.match(group.resource_class)
    assert names.OWNER_TRAIT in group.required
    assert not group.required & group.forbidden
    assert all(_CUSTOM.match(t) for t in group.traits)
    # The special-attribute rule: the group either names the attribute
    # (requires a value of it) or forbids its marker.
    assert MARKER in group.forbidden or any(
        t.startswith("CUSTOM_PCIPT_GROUP_") for t in group.required)
