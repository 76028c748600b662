"""nova's VIFs turned into PortRequests (pci_passthrough.nova.ports):
which ports are the library's, where a port's flavor comes from, trust,
VLAN and MAC; and, with hypothesis, malformed VIFs and instances as
hostile input: an InvalidPortRequest naming the port, never another
exception."""

import types
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pci_passthrough import PortRequest, exception
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.nova.ports import (
    FLAVOR_EXTRA_SPEC,
    PortPolicy,
    is_ours,
    pci_port_request,
    port_request,
    port_requests,
)

FLAVORS = parse_flavors(
    ['{"name": "net1", "physical_network": "physnet1"}',
     '{"name": "grp1", "group": "grp1"}',
     '{"name": "trusty", "physical_network": "physnet1", '
     '"trusted": "yes"}'],
    known_tags={"physical_network", "group", "trusted"},
    special_attributes=["group"])
POLICY = PortPolicy(FLAVORS)
PORT = "0b5a6a7e-8f9c-4d2e-a1b3-c4d5e6f70819"


def vif(port_id=PORT, vnic_type="macvtap", physnet="physnet1", **extra):
    """A VIF as nova's network_info holds it (nova.network.model.VIF
    is a dict with these keys)."""
    base = {"id": port_id, "address": "fa:16:3e:12:34:56",
            "vnic_type": vnic_type, "profile": {}, "details": {},
            "network": {"id": str(uuid.uuid4()), "label": "net",
                        "meta": {"physical_network": physnet}}}
    base.update(extra)
    return base


def instance(**extra_specs):
    return types.SimpleNamespace(
        uuid=str(uuid.uuid4()),
        flavor=types.SimpleNamespace(name="m1", extra_specs=extra_specs))


def test_a_macvtap_port_asks_what_nova_asks_for_it():
    req = port_request(vif(details={"vlan": "100"}), instance(), POLICY)
    assert req == PortRequest(0, spec={"physical_network": "physnet1"},
                              mac="fa:16:3e:12:34:56", vlan=100,
                              port_id=PORT)


@pytest.mark.parametrize("vnic_type", ["normal", "direct", "direct-physical",
                                       "vdpa", None])
def test_only_macvtap_ports_are_the_librarys(vnic_type):
    assert port_request(vif(vnic_type=vnic_type), instance(), POLICY) is None
    assert not is_ours(vif(vnic_type=vnic_type))


def test_the_flavor_comes_from_the_most_specific_source():
    physnet_key = f"{FLAVOR_EXTRA_SPEC}:physnet1"
    by_conf = PortPolicy(FLAVORS, {"physnet1": "trusty", "physnet2": "net1"})
    cases = [
        (instance(**{physnet_key: "grp1", FLAVOR_EXTRA_SPEC: "net1"}),
         by_conf, "grp1"),
        (instance(**{FLAVOR_EXTRA_SPEC: "net1"}), by_conf, "net1"),
        (instance(**{f"{FLAVOR_EXTRA_SPEC}:physnet9": "grp1"}), by_conf,
         "trusty"),
        (instance(), by_conf, "trusty"),
    ]
    for inst, policy, flavor in cases:
        assert port_request(vif(), inst, policy).flavor == flavor


def test_an_unknown_flavor_is_refused_naming_the_port_and_the_source():
    with pytest.raises(exception.InvalidPortRequest,
                       match=rf"port {PORT}: extra spec "
                             rf"{FLAVOR_EXTRA_SPEC} .* names 'gold', not a "
                             rf"configured PCI flavor \(known: grp1, net1"):
        port_request(vif(), instance(**{FLAVOR_EXTRA_SPEC: "gold"}), POLICY)
    with pytest.raises(exception.InvalidPortRequest,
                       match="option physnet_flavors"):
        port_request(vif(), instance(),
                     PortPolicy(FLAVORS, {"physnet1": "gold"}))


@pytest.mark.parametrize("value,trusted", [
    ("true", True), ("yes", True), ("1", True), (True, True),
    ("false", False), ("no", False), (False, False), (None, False)])
def test_trust_comes_from_the_binding_profile(value, trusted):
    req = port_request(vif(profile={"trusted": value}), instance(), POLICY)
    assert req.spec == ({"physical_network": "physnet1", "trusted": "true"}
                        if trusted else {"physical_network": "physnet1"})


def test_a_trusted_port_needs_a_named_flavor_that_requires_trust():
    trusted = vif(profile={"trusted": "true"})
    assert port_request(trusted, instance(**{FLAVOR_EXTRA_SPEC: "trusty"}),
                        POLICY).flavor == "trusty"
    with pytest.raises(exception.InvalidPortRequest,
                       match="asks for a trusted VF, but PCI flavor 'net1'"):
        port_request(trusted, instance(**{FLAVOR_EXTRA_SPEC: "net1"}),
                     POLICY)


@pytest.mark.parametrize("vlan,expected", [
    (None, None), (0, None), ("0", None), (100, 100), ("4094", 4094)])
def test_vlans(vlan, expected):
    details = {} if vlan is None else {"vlan": vlan}
    assert port_request(vif(details=details), instance(),
                        POLICY).vlan == expected


def test_network_info_gives_the_macvtap_ports_in_order_with_slots():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    info = [vif(a), vif(str(uuid.uuid4()), vnic_type="normal"), vif(b)]
    reqs = port_requests(info, instance(), POLICY)
    assert [(r.port_id, r.index) for r in reqs] == [(a, 0), (b, 0)]
    reqs = port_requests(info, instance(), POLICY, slots={a: 3, b: 1})
    assert [(r.port_id, r.index) for r in reqs] == [(a, 3), (b, 1)]
    with pytest.raises(exception.InvalidPortRequest,
                       match=f"port {b}: the slots give it None"):
        port_requests(info, instance(), POLICY, slots={a: 3})


@pytest.mark.parametrize("broken,reason", [
    ({"network": None}, "has no physical network"),
    ({"network": {"meta": {}}}, "has no physical network"),
    ({"network": {"meta": {"physical_network": ""}}},
     "has no physical network"),
    ({"network": "net"}, "its network 'net' is not a dict"),
    ({"address": "fa:16:3e"}, "MAC 'fa:16:3e' is not six"),
    ({"details": {"vlan": 5000}}, "its VLAN 5000 is not from 1 to 4094"),
    ({"details": {"vlan": "ten"}}, "its VLAN 'ten'"),
    ({"details": []}, "its details [] is not a dict"),
    ({"profile": {"trusted": "maybe"}}, "trusted 'maybe' is not a boolean"),
])
def test_malformed_vifs_are_refused_naming_the_port(broken, reason):
    with pytest.raises(exception.InvalidPortRequest) as err:
        port_request(vif(**broken), instance(), POLICY)
    assert str(err.value).startswith(f"Invalid request for port {PORT}: ")
    assert reason in str(err.value)


def test_a_vif_without_a_port_id_is_refused():
    with pytest.raises(exception.InvalidPortRequest,
                       match="port 'eth0': a port id is a UUID"):
        port_request(vif(port_id="eth0"), instance(), POLICY)
    with pytest.raises(exception.InvalidPortRequest, match="a VIF is a dict"):
        port_request(["id", PORT], instance(), POLICY)
    with pytest.raises(exception.InvalidPortRequest,
                       match="not a list of VIFs"):
        port_requests({"id": PORT}, instance(), POLICY)


def pci_request(port_id=PORT, **spec):
    """An InstancePCIRequest as nova-api makes it for a port
    (create_resource_requests)."""
    return types.SimpleNamespace(
        requester_id=port_id, count=1, request_id=str(uuid.uuid4()),
        spec=[{"physical_network": "physnet1", "remote_managed": "False",
               **spec}])


def test_nova_pci_request_asks_what_the_vif_asks_without_mac_and_vlan():
    req = pci_port_request(pci_request(), instance(), POLICY)
    assert req == PortRequest(0, spec={"physical_network": "physnet1"},
                              port_id=PORT)
    # nova writes trusted as str(bool).
    trusted = pci_port_request(pci_request(trusted="True"),
                               instance(**{FLAVOR_EXTRA_SPEC: "trusty"}),
                               POLICY)
    assert trusted.flavor == "trusty"
    assert pci_port_request(pci_request(trusted="False"), instance(),
                            POLICY).spec == {"physical_network": "physnet1"}
    named = pci_port_request(
        pci_request(), instance(**{f"{FLAVOR_EXTRA_SPEC}:physnet1": "grp1"}),
        POLICY)
    assert (named.flavor, named.spec) == ("grp1", None)


@pytest.mark.parametrize("request_,reason", [
    (pci_request(port_id=None), "a port id is a UUID"),
    (pci_request(physical_network=None), "names no physical network"),
    (types.SimpleNamespace(requester_id=PORT, spec=[]), "is not one dict"),
    (types.SimpleNamespace(requester_id=PORT, spec="x"), "is not one dict"),
    (pci_request(trusted="maybe"), "trusted 'maybe' is not a boolean"),
])
def test_malformed_pci_requests_are_refused_naming_the_port(request_,
                                                            reason):
    with pytest.raises(exception.InvalidPortRequest, match=reason):
        pci_port_request(request_, instance(), POLICY)


# -- hostile input ------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
FIELDS = {
    "id": st.sampled_from([PORT, PORT.upper(), "", "x"]) | JSONISH,
    "address": st.sampled_from(["fa:16:3e:00:00:01", "FA:16:3E:00:00:01"])
    | JSONISH,
    "vnic_type": st.just("macvtap") | JSONISH,
    "profile": st.fixed_dictionaries(
        {}, optional={"trusted": st.sampled_from(["yes", "no"]) | JSONISH})
    | JSONISH,
    "details": st.fixed_dictionaries(
        {}, optional={"vlan": st.sampled_from(["100", 7, 0]) | JSONISH})
    | JSONISH,
    "network": st.fixed_dictionaries({"meta": st.fixed_dictionaries(
        {}, optional={"physical_network": st.sampled_from(["physnet1"])
                      | JSONISH}) | JSONISH}) | JSONISH,
}
VIFS = st.fixed_dictionaries({}, optional=FIELDS)
EXTRA_SPECS = st.dictionaries(
    st.sampled_from([FLAVOR_EXTRA_SPEC, f"{FLAVOR_EXTRA_SPEC}:physnet1",
                     "hw:cpu_policy"]),
    st.sampled_from(["net1", "grp1", "trusty", "gold"]) | JSONISH,
    max_size=3) | JSONISH


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(VIFS, EXTRA_SPECS)
def test_any_vif_gives_a_request_none_or_an_error_naming_it(data, specs):
    inst = types.SimpleNamespace(
        uuid=str(uuid.uuid4()),
        flavor=types.SimpleNamespace(extra_specs=specs))
    if data.get("vnic_type") != "macvtap":
        # nova's own ports are not looked at, however they are made.
        assert port_request(data, inst, POLICY) is None
        return
    try:
        req = port_request(data, inst, POLICY)
    except exception.InvalidPortRequest as exc:
        text = str(exc)
        assert text.startswith("Invalid request for port ")
        if isinstance(data.get("id"), str) and \
                data["id"].lower() == PORT:
            assert text.startswith(f"Invalid request for port {PORT}: ")
        assert len(text) < 600
        return
    assert req.port_id == PORT
    assert (req.flavor is None) != (req.spec is None)
    if req.flavor is None:
        assert req.spec["physical_network"] == "physnet1"


PCI_SPECS = st.lists(
    st.fixed_dictionaries({}, optional={
        "physical_network": st.just("physnet1") | JSONISH,
        "trusted": st.sampled_from(["True", "False"]) | JSONISH,
        "remote_managed": st.just("False")}) | JSONISH, max_size=2) | JSONISH


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([PORT, PORT.upper()]) | JSONISH, PCI_SPECS,
       EXTRA_SPECS)
def test_any_pci_request_gives_a_request_or_an_error_naming_it(
        port_id, spec, specs):
    inst = types.SimpleNamespace(
        uuid=str(uuid.uuid4()),
        flavor=types.SimpleNamespace(extra_specs=specs))
    request_ = types.SimpleNamespace(requester_id=port_id, spec=spec)
    try:
        req = pci_port_request(request_, inst, POLICY)
    except exception.InvalidPortRequest as exc:
        text = str(exc)
        assert text.startswith("Invalid request for port ")
        if isinstance(port_id, str) and port_id.lower() == PORT:
            assert text.startswith(f"Invalid request for port {PORT}: ")
        assert len(text) < 600
        return
    assert req.port_id == PORT
    assert (req.mac, req.vlan) == (None, None)
    assert (req.flavor is None) != (req.spec is None)
    if req.flavor is None:
        assert req.spec["physical_network"] == "physnet1"
