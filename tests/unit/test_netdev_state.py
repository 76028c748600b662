"""VF hygiene records: validation, journal text, differences and restore
plans.  Pure code: no netlink, no root."""

import dataclasses
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.hygiene import (
    Difference,
    InvalidNetdevState,
    NetdevState,
    NetdevStateMismatch,
    RestoreStep,
    StepKind,
    VfState,
    diff,
    from_json,
    plan_netdev_steps,
    plan_vf_steps,
    to_json,
)
from pci_passthrough.hygiene import journal as journal_mod

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "150"))
SEEDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
SOURCE = "journal of device 0000:3b:10.2"

VF = VfState(pf="ens1f0", index=3, mac="02:00:00:00:03:01", vlan=100,
             qos=2, spoof_check=True, trust=False)
STATE = NetdevState(netdev="ens1f0v3", mac="02:00:00:00:03:01", mtu=1500,
                    up=True, vf=VF)

# -- strategies ----------------------------------------------------------

_octet = hst.integers(0, 255)
unicast_macs = hst.tuples(_octet.map(lambda o: o & 0xFE),
                          *[_octet] * 5).map(
    lambda t: ":".join(f"{o:02x}" for o in t))
netdev_names = hst.text(
    alphabet=[chr(c) for c in range(0x21, 0x7F) if chr(c) not in "/:"],
    min_size=1, max_size=15).filter(lambda n: n not in (".", ".."))
flags = hst.none() | hst.booleans()
vf_states = hst.builds(
    VfState, pf=netdev_names, index=hst.integers(0, 0xFFFE),
    mac=unicast_macs, vlan=hst.integers(0, 4095), qos=hst.integers(0, 7),
    vlan_proto=hst.sampled_from((0x8100, 0x88A8)), spoof_check=flags,
    trust=flags)
states = hst.builds(NetdevState, netdev=netdev_names, mac=unicast_macs,
                    mtu=hst.integers(68, 65535), up=hst.booleans(),
                    vf=hst.none() | vf_states)
json_values = hst.recursive(
    hst.none() | hst.booleans() | hst.integers() | hst.floats()
    | hst.text(max_size=20),
    lambda inner: hst.lists(inner, max_size=4)
    | hst.dictionaries(hst.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def _doc(state: NetdevState = STATE) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(to_json(state))
    return doc


# -- the journal text ----------------------------------------------------

@SEEDED
@given(states)
def test_journal_round_trip(state: NetdevState) -> None:
    text = to_json(state)
    assert from_json(text, SOURCE) == state
    # Equal records give equal text: the journal is comparable as text.
    assert to_json(from_json(text, SOURCE)) == text


@SEEDED
@given(hst.text(max_size=300) | json_values.map(json.dumps))
def test_hostile_text_is_refused_with_the_library_error(text: str) -> None:
    try:
        state = from_json(text, SOURCE)
    except InvalidNetdevState as exc:
        assert SOURCE in str(exc)
    else:  # pragma: no cover - a random text is never a whole journal
        assert from_json(to_json(state), SOURCE) == state


_TOP_FIELDS = ("version", "netdev", "mac", "mtu", "up", "vf")
_VF_FIELDS = ("pf", "index", "mac", "vlan", "qos", "vlan_proto",
              "spoof_check", "trust")


@SEEDED
@given(hst.sampled_from(_TOP_FIELDS + tuple(f"vf.{f}" for f in _VF_FIELDS)),
       json_values)
def test_a_replaced_field_is_named_in_the_error(field: str,
                                                value: object) -> None:
    doc = _doc()
    target = doc["vf"] if field.startswith("vf.") else doc
    key = field.removeprefix("vf.")
    target[key] = value
    try:
        state = from_json(json.dumps(doc), SOURCE)
    except InvalidNetdevState as exc:
        named = exc.kwargs["field"]
        # A key given twice, or a key inside a replaced object, is named.
        assert named.startswith((field, "'")), str(exc)
        assert SOURCE in str(exc)
    else:
        # The random value happened to be a valid one for the field.
        assert from_json(to_json(state), SOURCE) == state


def _with(path: str, value: object) -> str:
    doc = _doc()
    target = doc
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    target[last] = value
    return json.dumps(doc)


def _without(path: str) -> str:
    doc = _doc()
    target = doc
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    del target[last]
    return json.dumps(doc)


GOOD = to_json(STATE)

HOSTILE = [
    # (text, field named, words in the message)
    ("", "(journal)", "not JSON"),
    ("null", "(journal)", "a JSON object"),
    ("[]", "(journal)", "a JSON object"),
    ("[" * 3000 + "]" * 3000, "(journal)", "at most 4096"),
    ("[" * 2000 + "]" * 2000, "(journal)", "not JSON"),
    (" " * 5000 + GOOD, "(journal)", "at most 4096"),
    (GOOD[:-1], "(journal)", "not JSON"),
    (_with("mtu", float("nan")), "mtu", "got nan"),
    (_with("mtu", float("inf")), "mtu", "got inf"),
    (_with("vf.vlan", float("-inf")), "vf.vlan", "got -inf"),
    (_with("mtu", 1500.0), "mtu", "an integer 68..65535"),
    (_with("mtu", True), "mtu", "an integer"),
    (_with("mtu", 67), "mtu", "68..65535"),
    (_with("mtu", 65536), "mtu", "68..65535"),
    (GOOD.replace('"mtu":1500', '"mtu":' + "9" * 3700), "mtu",
     "68..65535"),
    (_with("mtu", "1500"), "mtu", "an integer"),
    (_with("up", 1), "up", "true or false"),
    (_with("up", None), "up", "true or false"),
    (_with("version", 2), "version", "version 1 only"),
    (_with("version", "1"), "version", "version 1 only"),
    (_with("version", True), "version", "version 1 only"),
    (_with("netdev", "a/b"), "netdev", "printable ASCII"),
    (_with("netdev", "x" * 16), "netdev", "1 to 15"),
    (_with("netdev", "eth\u00e90"), "netdev", "printable ASCII"),
    (_with("netdev", ".."), "netdev", "not '.' or '..'"),
    (_with("netdev", 5), "netdev", "printable ASCII"),
    (_with("mac", "02:00:00:00:03:0G"), "mac", "six lower-case"),
    (_with("mac", "02:00:00:00:03:01:00"), "mac", "six lower-case"),
    (_with("mac", "02:00:00:00:03:AB"), "mac", "lower-case"),
    (_with("mac", "03:00:00:00:03:01"), "mac", "not a multicast"),
    (_with("mac", "02:00:00:00:03:01\n"), "mac", "six lower-case"),
    (_with("mac", ""), "mac", "six lower-case"),
    (_with("vf", []), "vf", "a JSON object"),
    (_with("vf", "ens1f0"), "vf", "a JSON object"),
    (_with("vf.index", -1), "vf.index", "0..65534"),
    (_with("vf.index", 65535), "vf.index", "0..65534"),
    (_with("vf.vlan", 4096), "vf.vlan", "0..4095"),
    (_with("vf.qos", 8), "vf.qos", "0..7"),
    (_with("vf.vlan_proto", 0x9100), "vf.vlan_proto", "802.1ad"),
    (_with("vf.vlan_proto", True), "vf.vlan_proto", "802.1Q"),
    (_with("vf.spoof_check", "yes"), "vf.spoof_check", "true, false"),
    (_with("vf.trust", 0), "vf.trust", "true, false or null"),
    (_with("vf.mac", "ff:ff:ff:ff:ff:ff"), "vf.mac", "multicast"),
    (_with("vf.pf", ""), "vf.pf", "1 to 15"),
    (_with("extra", 1), "'extra'", "unknown key"),
    (_with("vf.extra", 1), "vf.'extra'", "unknown key"),
    (_without("mtu"), "mtu", "missing"),
    (_without("vf"), "vf", "missing"),
    (_without("vf.trust"), "vf.trust", "missing"),
    (GOOD.replace('"mtu":1500', '"mtu":1500,"mtu":9000'), "'mtu'",
     "twice"),
]


@pytest.mark.parametrize(("text", "field", "words"), HOSTILE)
def test_hostile_journal_names_the_field(text: str, field: str,
                                         words: str) -> None:
    with pytest.raises(InvalidNetdevState) as info:
        from_json(text, SOURCE)
    message = str(info.value)
    assert info.value.kwargs["field"] == field, message
    assert words in message
    assert SOURCE in message


@pytest.mark.parametrize("value", [None, b'{"version": 1}', 1, ["x"]])
def test_journal_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidNetdevState, match="expected JSON text"):
        from_json(value, SOURCE)


def test_the_error_is_a_library_error() -> None:
    with pytest.raises(exception.PciPassthroughError):
        from_json("{", SOURCE)


def test_long_unknown_key_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidNetdevState) as info:
        from_json(_with("k" * 500, 1), SOURCE)
    assert len(str(info.value)) < 400


def test_journal_size_bound_is_the_documented_one() -> None:
    assert journal_mod.MAX_CHARS == 4096
    assert len(to_json(STATE)) < 400


# -- records built in code are checked too --------------------------------

@pytest.mark.parametrize(("changes", "field"), [
    ({"mtu": 1 << 40}, "mtu"),
    ({"mac": "00:00:00:00:00:0"}, "mac"),
    ({"netdev": ""}, "netdev"),
    ({"up": "yes"}, "up"),
    ({"vf": {"pf": "x"}}, "vf"),
])
def test_record_refuses_bad_values(changes: dict[str, object],
                                   field: str) -> None:
    with pytest.raises(InvalidNetdevState) as info:
        dataclasses.replace(STATE, **changes)  # type: ignore[arg-type]
    assert info.value.kwargs["field"] == field
    assert "netdev 'ens1f0v3'" in str(info.value) or field == "netdev"


def test_zero_vf_mac_means_none_set_and_is_accepted() -> None:
    vf = dataclasses.replace(VF, mac="00:00:00:00:00:00")
    assert from_json(to_json(dataclasses.replace(STATE, vf=vf)),
                     SOURCE).vf == vf


# -- differences ---------------------------------------------------------

def test_no_difference_with_itself() -> None:
    assert diff(STATE, STATE) == ()


@pytest.mark.parametrize(("changes", "vf_changes", "expected"), [
    ({"mac": "02:00:00:00:00:99"}, {},
     [Difference("mac", STATE.mac, "02:00:00:00:00:99")]),
    ({"mtu": 9000, "up": False}, {},
     [Difference("mtu", 1500, 9000), Difference("up", True, False)]),
    ({}, {"vlan": 0, "trust": True},
     [Difference("vf.vlan", 100, 0), Difference("vf.trust", False, True)]),
    ({"mtu": 9000}, {"mac": "02:00:00:00:00:99", "vlan_proto": 0x88A8},
     [Difference("vf.mac", VF.mac, "02:00:00:00:00:99"),
      Difference("vf.vlan_proto", 0x8100, 0x88A8),
      Difference("mtu", 1500, 9000)]),
    ({}, {"spoof_check": None},
     [Difference("vf.spoof_check", True, None)]),
])
def test_differences_name_each_field(changes: dict[str, Any],
                                     vf_changes: dict[str, Any],
                                     expected: list[Difference]) -> None:
    current = dataclasses.replace(
        STATE, vf=dataclasses.replace(VF, **vf_changes), **changes)
    assert list(diff(STATE, current)) == expected
    assert "journal:" in str(expected[0])


def test_unknown_flags_in_the_journal_are_not_compared() -> None:
    journal = dataclasses.replace(
        STATE, vf=dataclasses.replace(VF, spoof_check=None, trust=None))
    current = dataclasses.replace(
        STATE, vf=dataclasses.replace(VF, spoof_check=False, trust=True))
    assert diff(journal, current) == ()


def test_vf_no_longer_reported_is_a_difference() -> None:
    (found,) = diff(STATE, dataclasses.replace(STATE, vf=None))
    assert found.field == "vf"
    assert found.current is None


def test_journal_without_vf_compares_the_netdev_only() -> None:
    journal = dataclasses.replace(STATE, vf=None)
    current = dataclasses.replace(STATE, vf=dataclasses.replace(VF, vlan=5))
    assert diff(journal, current) == ()


@pytest.mark.parametrize("current", [
    dataclasses.replace(STATE, netdev="ens1f0v4"),
    dataclasses.replace(STATE, vf=dataclasses.replace(VF, index=4)),
    dataclasses.replace(STATE, vf=dataclasses.replace(VF, pf="ens2f0")),
])
def test_different_devices_are_not_compared(current: NetdevState) -> None:
    with pytest.raises(NetdevStateMismatch, match="different devices"):
        diff(STATE, current)
    with pytest.raises(NetdevStateMismatch):
        plan_netdev_steps(STATE, current)


# -- restore plans -------------------------------------------------------

def _step(kind: StepKind, value: Any) -> RestoreStep:
    return RestoreStep(kind, value)


@pytest.mark.parametrize(("current", "expected"), [
    (STATE, []),
    (dataclasses.replace(STATE, mtu=9000), [_step(StepKind.MTU, 1500)]),
    (dataclasses.replace(STATE, mac="02:aa:00:00:00:01"),
     [_step(StepKind.LINK_DOWN, False), _step(StepKind.MAC, STATE.mac),
      _step(StepKind.ADMIN_STATE, True)]),
    (dataclasses.replace(STATE, mac="02:aa:00:00:00:01", up=False),
     [_step(StepKind.MAC, STATE.mac), _step(StepKind.ADMIN_STATE, True)]),
    (dataclasses.replace(STATE, up=False), [_step(StepKind.ADMIN_STATE,
                                                  True)]),
])
def test_netdev_plan(current: NetdevState,
                     expected: list[RestoreStep]) -> None:
    assert list(plan_netdev_steps(STATE, current)) == expected


def test_netdev_plan_to_a_down_journal_sets_down_once() -> None:
    journal = dataclasses.replace(STATE, up=False)
    current = dataclasses.replace(STATE, mac="02:aa:00:00:00:01", mtu=9000)
    assert list(plan_netdev_steps(journal, current)) == [
        _step(StepKind.LINK_DOWN, False), _step(StepKind.MAC, STATE.mac),
        _step(StepKind.MTU, 1500)]


def test_vf_plan_writes_only_what_differs_in_order() -> None:
    current = dataclasses.replace(STATE, vf=dataclasses.replace(
        VF, mac="00:00:00:00:00:00", vlan=0, qos=0, spoof_check=False,
        trust=True))
    assert list(plan_vf_steps(STATE, current)) == [
        _step(StepKind.VF_MAC, VF.mac),
        _step(StepKind.VF_VLAN, (100, 2, 0x8100)),
        _step(StepKind.VF_SPOOF_CHECK, True),
        _step(StepKind.VF_TRUST, False)]
    assert plan_vf_steps(STATE, STATE) == ()
    assert plan_vf_steps(dataclasses.replace(STATE, vf=None), current) == ()


def _simulate(state: NetdevState, steps: tuple[RestoreStep, ...],
              trace: list[tuple[StepKind, bool]]) -> NetdevState:
    """What a kernel that refuses MAC changes on a running link would
    hold after the steps (a model for the planner, not a stand-in for
    netlink)."""
    vf = state.vf
    for step in steps:
        trace.append((step.kind, state.up))
        value: Any = step.value
        if step.kind is StepKind.MAC:
            assert not state.up, "MAC changed while the link was up"
            state = dataclasses.replace(state, mac=value)
        elif step.kind is StepKind.MTU:
            state = dataclasses.replace(state, mtu=value)
        elif step.kind in (StepKind.LINK_DOWN, StepKind.ADMIN_STATE):
            state = dataclasses.replace(state, up=value)
        else:
            assert vf is not None
            field = {StepKind.VF_MAC: "mac",
                     StepKind.VF_SPOOF_CHECK: "spoof_check",
                     StepKind.VF_TRUST: "trust"}.get(step.kind)
            if field:
                vf = dataclasses.replace(vf, **{field: value})
            else:
                vlan, qos, proto = value
                vf = dataclasses.replace(vf, vlan=vlan, qos=qos,
                                         vlan_proto=proto)
            state = dataclasses.replace(state, vf=vf)
    return state


@SEEDED
@given(states, hst.data())
def test_plans_reach_the_journal(journal: NetdevState,
                                 data: hst.DataObject) -> None:
    vf = journal.vf
    current = data.draw(hst.builds(
        NetdevState, netdev=hst.just(journal.netdev), mac=unicast_macs,
        mtu=hst.integers(68, 65535), up=hst.booleans(),
        vf=hst.none() if vf is None else vf_states.map(
            lambda v: dataclasses.replace(v, pf=vf.pf, index=vf.index))))
    trace: list[tuple[StepKind, bool]] = []
    vf_steps = plan_vf_steps(journal, current)
    current = _simulate(current, vf_steps, trace)
    steps = plan_netdev_steps(journal, current)
    restored = _simulate(current, steps, trace)
    assert diff(journal, restored) == ()
    kinds = [kind for kind, _ in trace]
    # Only what differed is written, each at most once.
    assert len(kinds) == len(set(kinds))
    if StepKind.ADMIN_STATE in kinds:
        assert kinds[-1] is StepKind.ADMIN_STATE
    # Nothing to do when nothing differs.
    assert plan_netdev_steps(journal, restored) == ()
    assert plan_vf_steps(journal, restored) == ()
