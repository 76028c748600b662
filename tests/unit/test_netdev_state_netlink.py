"""Reading netdev state from netlink messages, without root.

No netdev here has VFs (veth and dummy devices have none, and this host
has no SR-IOV NIC), so IFLA_VFINFO_LIST parsing is tested on messages
that pyroute2's own encoder turns into the bytes the kernel sends
(struct ifla_vf_mac, ifla_vf_vlan, ...) and its decoder reads back:
the parser under test sees a real decoded RTM_NEWLINK message.
"""

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from pyroute2.netlink.rtnl.ifinfmsg import (  # type: ignore[import-untyped]
    ifinfmsg,
)

from pci_passthrough import exception
from pci_passthrough.hygiene import (
    InvalidNetdevState,
    NetdevGone,
    NetdevStateError,
    NetnsUnavailable,
    VfState,
)
from pci_passthrough.hygiene import netlink as nl

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "100"))
SEEDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
UNREPORTED = 0xFFFFFFFF


def _vf_info(vf: VfState | None = None, *, index: int | None = None,
             spoofchk: int | None = None, trust: int | None = None,
             vlan_list: bool = True) -> tuple[str, dict[str, Any]]:
    vf = vf or VfState(pf="pf0", index=index or 0)
    idx = vf.index
    attrs: list[tuple[str, Any]] = [
        ("IFLA_VF_MAC", {"vf": idx, "mac": vf.mac}),
        ("IFLA_VF_VLAN", {"vf": idx, "vlan": vf.vlan, "qos": vf.qos}),
        ("IFLA_VF_SPOOFCHK", {"vf": idx, "spoofchk": (
            spoofchk if spoofchk is not None else
            UNREPORTED if vf.spoof_check is None else int(vf.spoof_check))}),
        ("IFLA_VF_TRUST", {"vf": idx, "trust": (
            trust if trust is not None else
            UNREPORTED if vf.trust is None else int(vf.trust))}),
    ]
    if vlan_list:
        attrs.append(("IFLA_VF_VLAN_LIST", {"attrs": [
            ("IFLA_VF_VLAN_INFO", {"vf": idx, "vlan": vf.vlan,
                                   "qos": vf.qos,
                                   "proto": vf.vlan_proto})]}))
    return ("IFLA_VF_INFO", {"attrs": attrs})


def _link_message(name: str, address: str | None = "02:00:00:00:00:aa",
                  mtu: int = 1500, flags: int = 0,
                  vf_infos: list[tuple[str, dict[str, Any]]] | None = None
                  ) -> Any:
    """An RTM_NEWLINK message as bytes, decoded by pyroute2."""
    msg = ifinfmsg()
    msg["index"] = 7
    msg["flags"] = flags
    msg["change"] = 0
    attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name),
                                    ("IFLA_MTU", mtu)]
    if address is not None:
        attrs.append(("IFLA_ADDRESS", address))
    if vf_infos is not None:
        attrs.append(("IFLA_NUM_VF", len(vf_infos)))
        attrs.append(("IFLA_VFINFO_LIST", {"attrs": vf_infos}))
    msg["attrs"] = attrs
    msg.encode()
    decoded = ifinfmsg(bytes(msg.data[:msg["header"]["length"]]))
    decoded.decode()
    return decoded


# -- IFLA_VFINFO_LIST ----------------------------------------------------

def test_vf_info_is_read_for_the_requested_vf() -> None:
    want = VfState(pf="pf0", index=2, mac="02:11:22:33:44:55", vlan=100,
                   qos=3, vlan_proto=0x88A8, spoof_check=True, trust=False)
    msg = _link_message("pf0", vf_infos=[
        _vf_info(index=0), _vf_info(index=1), _vf_info(want)])
    assert nl.parse_vf_info(msg, "pf0", 2) == want
    assert nl.parse_vf_info(msg, "pf0", 0) == VfState(pf="pf0", index=0)


def test_unreported_flags_read_as_unknown() -> None:
    msg = _link_message("pf0", vf_infos=[
        _vf_info(index=0, spoofchk=UNREPORTED, trust=UNREPORTED)])
    vf = nl.parse_vf_info(msg, "pf0", 0)
    assert vf is not None
    assert (vf.spoof_check, vf.trust) == (None, None)


def test_vlan_without_a_protocol_list_is_802_1q() -> None:
    sent = VfState(pf="pf0", index=0, vlan=42, qos=1)
    msg = _link_message("pf0", vf_infos=[_vf_info(sent, vlan_list=False)])
    vf = nl.parse_vf_info(msg, "pf0", 0)
    assert vf is not None
    assert (vf.vlan, vf.qos, vf.vlan_proto) == (42, 1, 0x8100)


@pytest.mark.parametrize("vf_infos", [None, []])
def test_pf_reporting_no_vfs_gives_none(
        vf_infos: list[tuple[str, dict[str, Any]]] | None) -> None:
    msg = _link_message("pf0", vf_infos=vf_infos)
    assert nl.parse_vf_info(msg, "pf0", 0) is None


def test_vf_missing_from_the_report_is_an_error_naming_it() -> None:
    msg = _link_message("pf0", vf_infos=[_vf_info(index=0),
                                         _vf_info(index=1)])
    with pytest.raises(NetdevStateError,
                       match="pf0: the PF reports 2 VFs but not VF 5"):
        nl.parse_vf_info(msg, "pf0", 5)


def test_vf_with_values_a_record_refuses_is_refused() -> None:
    # A multicast admin MAC: the kernel would never report one; a record
    # refuses it rather than journal something it could not write back.
    msg = _link_message("pf0", vf_infos=[_vf_info(index=0)])
    msg.get_attr("IFLA_VFINFO_LIST").get_attrs("IFLA_VF_INFO")[0] \
        .get_attr("IFLA_VF_MAC")["mac"] = "01:00:5e:00:00:01"
    with pytest.raises(InvalidNetdevState, match=r"field vf\.mac"):
        nl.parse_vf_info(msg, "pf0", 0)


_octet = hst.integers(0, 255)
vf_states = hst.builds(
    VfState, pf=hst.just("pf0"), index=hst.integers(0, 300),
    mac=hst.tuples(_octet.map(lambda o: o & 0xFE), *[_octet] * 5).map(
        lambda t: ":".join(f"{o:02x}" for o in t)),
    vlan=hst.integers(0, 4095), qos=hst.integers(0, 7),
    vlan_proto=hst.sampled_from((0x8100, 0x88A8)),
    spoof_check=hst.none() | hst.booleans(),
    trust=hst.none() | hst.booleans())


@SEEDED
@given(hst.lists(vf_states, min_size=1, max_size=8,
                 unique_by=lambda v: v.index))
def test_every_encoded_vf_is_read_back(vfs: list[VfState]) -> None:
    msg = _link_message("pf0", vf_infos=[_vf_info(v) for v in vfs])
    for vf in vfs:
        assert nl.parse_vf_info(msg, "pf0", vf.index) == vf


# -- the link itself -----------------------------------------------------

def test_link_message_is_read() -> None:
    index, state = nl.parse_link(
        _link_message("vf0", mtu=9000, flags=nl.IFF_UP | 0x1000), "vf0")
    assert index == 7
    assert (state.netdev, state.mac, state.mtu, state.up) == (
        "vf0", "02:00:00:00:00:aa", 9000, True)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"address": None}, "mac"),
    # No Ethernet netdev holds a multicast address.
    ({"address": "01:00:5e:00:00:01"}, "mac"),
    ({"mtu": 65536}, "mtu"),
])
def test_link_that_is_not_ethernet_is_refused(kwargs: dict[str, Any],
                                              field: str) -> None:
    with pytest.raises(InvalidNetdevState) as info:
        nl.parse_link(_link_message("vf0", **kwargs), "vf0")
    assert info.value.kwargs["field"] == field


def test_answer_for_another_netdev_is_refused() -> None:
    with pytest.raises(NetdevStateError, match="answered for 'vf1'"):
        nl.parse_link(_link_message("vf1"), "vf0")


# -- real netlink in this namespace, reading only (no root needed) --------

def test_loopback_is_not_an_ethernet_netdev() -> None:
    with nl.links() as links, pytest.raises(NetdevStateError) as info:
        links.read("lo")
    assert "netdev lo" in str(info.value)
    assert "read the link" in str(info.value)


def test_missing_netdev_is_gone() -> None:
    with pytest.raises(NetdevGone) as info:
        nl.read_state("pcipthygnone0")
    text = str(info.value)
    assert "read the link of netdev pcipthygnone0" in text
    assert "No such device" in text


@pytest.mark.parametrize("name", ["", "a/b", "x" * 16, "eth 0", ".."])
def test_invalid_names_are_refused_before_netlink(name: str) -> None:
    with pytest.raises(exception.InvalidNetdevName):
        nl.read_state(name)
    with pytest.raises(exception.InvalidNetdevName, match="PF of lo"):
        nl.read_state("lo", vf=(name, 0))


@pytest.mark.parametrize("netns", ["pcipthyg-no-such-ns",
                                   "/proc/self/ns/no-such"])
def test_missing_namespace_is_refused_and_never_created(netns: str) -> None:
    with pytest.raises(NetnsUnavailable, match="does not exist"):
        nl.read_state("lo", netns=netns)
    assert not os.path.exists(os.path.join("/run/netns", netns))


@pytest.mark.parametrize("netns", ["", "a\0b", 5])
def test_namespace_that_is_no_name_is_refused(netns: object) -> None:
    with pytest.raises(NetnsUnavailable, match="expected a namespace"):
        nl.NetdevLinks(netns)  # type: ignore[arg-type]
