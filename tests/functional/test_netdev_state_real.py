"""VF hygiene on real netdevs: a veth pair in a private network namespace.

Needs root (network namespaces, CAP_NET_ADMIN); skips with the reason
otherwise, fails instead with PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1.  Each
test makes its own namespace and removes only that.

veth has no VFs, so the PF side (IFLA_VFINFO_LIST) is read here only as
"this PF reports no VF"; its parsing is tested in
tests/unit/test_netdev_state_netlink.py on kernel-format messages.
"""

import dataclasses
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.rtnl.marshal import (  # type: ignore[import-untyped]
    MarshalRtnl,
)
from veth_netns import require_root, veth_namespace

from pci_passthrough.hygiene import (
    NetdevGone,
    NetdevStateError,
    StepKind,
    from_json,
    to_json,
)
from pci_passthrough.hygiene import netlink as nl

pytestmark = pytest.mark.functional

VF = "vfa0"
PEER = "vfa0p"
GUEST_MAC = "02:ca:fe:00:00:01"
RTMGRP_LINK = 0x1
NETLINK_ROUTE = 0


@pytest.fixture
def netns() -> Iterator[str]:
    """A private namespace holding the veth pair vfa0 / vfa0p, down."""
    require_root("netdev state tests")
    with veth_namespace("pcipthyg", VF, PEER) as name:
        yield name


def _fresh(netns: str, name: str = VF) -> tuple[str, int, bool]:
    """MAC, MTU and admin state from a new netlink socket."""
    with IPRoute(netns=netns, flags=0) as ipr:
        (msg,) = ipr.link("get", ifname=name)
        return (msg.get_attr("IFLA_ADDRESS"), msg.get_attr("IFLA_MTU"),
                bool(msg["flags"] & nl.IFF_UP))


def _set(netns: str, **kwargs: Any) -> None:
    """Change vfa0 as a guest, libvirt or an operator would."""
    with IPRoute(netns=netns, flags=0) as ipr:
        index = ipr.link_lookup(ifname=VF)[0]
        state = kwargs.pop("state", None)
        if kwargs:
            ipr.link("set", index=index, **kwargs)
        if state:
            ipr.link("set", index=index, state=state)


class _LinkEvents:
    """RTM_NEWLINK notifications of one namespace, read until a marker
    change on the peer shows that every earlier one has arrived."""

    def __init__(self, netns: str) -> None:
        self._netns = netns
        self._sock = pyroute2_netns.create_socket(
            netns, family=socket.AF_NETLINK, socket_type=socket.SOCK_RAW,
            proto=NETLINK_ROUTE, flags=0)
        self._sock.bind((0, RTMGRP_LINK))
        self._sock.settimeout(10)
        self._marker = 1280

    def close(self) -> None:
        self._sock.close()

    def of_vf(self) -> list[tuple[str, bool]]:
        """(MAC, up) of each notification about vfa0 since the start."""
        # A new value each time, or the kernel would send no event.
        self._marker += 1
        with IPRoute(netns=self._netns, flags=0) as ipr:
            index = ipr.link_lookup(ifname=PEER)[0]
            ipr.link("set", index=index, mtu=self._marker)
        seen: list[tuple[str, bool]] = []
        marshal = MarshalRtnl()
        while True:
            for msg in marshal.parse(self._sock.recv(65536)):
                name = msg.get_attr("IFLA_IFNAME")
                if (name == PEER
                        and msg.get_attr("IFLA_MTU") == self._marker):
                    return seen
                if name == VF:
                    seen.append((msg.get_attr("IFLA_ADDRESS"),
                                 bool(msg["flags"] & nl.IFF_UP)))


@pytest.fixture
def events(netns: str) -> Iterator[_LinkEvents]:
    watcher = _LinkEvents(netns)
    yield watcher
    watcher.close()


def test_read_matches_a_fresh_netlink_read(netns: str) -> None:
    _set(netns, mtu=4000, state="up")
    state = nl.read_state(VF, netns=netns)
    assert (state.mac, state.mtu, state.up) == _fresh(netns)
    assert (state.mtu, state.up, state.vf) == (4000, True, None)
    # By path as well as by name.
    assert nl.read_state(VF, netns=f"/run/netns/{netns}") == state


def test_guest_changes_are_restored_from_the_journal(netns: str) -> None:
    before = _fresh(netns)
    # The journal goes through its text form, as it would via the ledger.
    text = to_json(nl.read_state(VF, netns=netns))
    _set(netns, address=GUEST_MAC, mtu=9000, state="up")
    assert _fresh(netns) == (GUEST_MAC, 9000, True)

    journal = from_json(text, "journal of vfa0")
    steps = nl.restore_state(journal, netns=netns)

    assert [s.kind for s in steps] == [
        StepKind.LINK_DOWN, StepKind.MAC, StepKind.MTU]
    assert _fresh(netns) == before
    assert nl.restore_state(journal, netns=netns) == ()


def test_mac_is_changed_with_the_link_down_then_set_up(
        netns: str, events: _LinkEvents) -> None:
    _set(netns, state="up")
    journal = nl.read_state(VF, netns=netns)
    _set(netns, address=GUEST_MAC)
    events.of_vf()  # what the guest's change caused

    steps = nl.restore_state(journal, netns=netns)

    assert [s.kind for s in steps] == [
        StepKind.LINK_DOWN, StepKind.MAC, StepKind.ADMIN_STATE]
    seen = events.of_vf()
    restored = [up for mac, up in seen if mac == journal.mac]
    assert restored, seen
    assert restored[0] is False, f"MAC changed on a running link: {seen}"
    assert seen[-1] == (journal.mac, True)
    assert _fresh(netns) == (journal.mac, journal.mtu, True)


def test_nothing_is_written_when_nothing_differs(
        netns: str, events: _LinkEvents) -> None:
    journal = nl.read_state(VF, netns=netns)
    assert nl.restore_state(journal, netns=netns) == ()
    assert events.of_vf() == []


def test_only_what_differs_is_written(netns: str,
                                      events: _LinkEvents) -> None:
    _set(netns, state="up")
    journal = nl.read_state(VF, netns=netns)
    _set(netns, mtu=2000)
    events.of_vf()
    steps = nl.restore_state(journal, netns=netns)
    assert [s.kind for s in steps] == [StepKind.MTU]
    # The link never went down: no MAC to change.
    assert all(up for _, up in events.of_vf())


def test_down_journal_is_restored_down(netns: str) -> None:
    journal = nl.read_state(VF, netns=netns)
    assert journal.up is False
    _set(netns, address=GUEST_MAC, state="up")
    steps = nl.restore_state(journal, netns=netns)
    assert [s.kind for s in steps] == [StepKind.LINK_DOWN, StepKind.MAC]
    assert _fresh(netns) == (journal.mac, journal.mtu, False)


def test_failed_mac_write_sets_the_link_up_again(netns: str) -> None:
    # veth refuses an all-zero MAC (EADDRNOTAVAIL): a real fault in the
    # middle of a restore, after the link was set down for it.
    _set(netns, address=GUEST_MAC, state="up")
    journal = dataclasses.replace(nl.read_state(VF, netns=netns),
                                  mac="00:00:00:00:00:00")
    with pytest.raises(NetdevStateError) as info:
        nl.restore_state(journal, netns=netns)
    text = str(info.value)
    assert f"set the MAC to '00:00:00:00:00:00' of netdev {VF}" in text
    assert f"in network namespace {netns}" in text
    assert "errno 99" in text
    assert _fresh(netns) == (GUEST_MAC, journal.mtu, True)


def test_netdev_gone_names_the_netdev_and_step(netns: str) -> None:
    journal = nl.read_state(VF, netns=netns)
    with IPRoute(netns=netns, flags=0) as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=VF)[0])
    with pytest.raises(NetdevGone) as info:
        nl.restore_state(journal, netns=netns)
    assert f"read the link of netdev {VF} in network namespace" in str(
        info.value)


def test_veth_peer_as_pf_reports_no_vf(netns: str) -> None:
    # The PF side is read with RTEXT_FILTER_VF; a netdev without VFs
    # answers without IFLA_VFINFO_LIST.
    state = nl.read_state(VF, vf=(PEER, 0), netns=netns)
    assert state.vf is None


def test_missing_pf_is_gone_naming_the_pf(netns: str) -> None:
    with pytest.raises(NetdevGone, match="VF 0 on PF nopf0"):
        nl.read_state(VF, vf=("nopf0", 0), netns=netns)


def test_write_without_cap_net_admin_is_permission_denied(
        netns: str) -> None:
    journal = nl.read_state(VF, netns=netns)
    _set(netns, mtu=9000)
    # A real EPERM: the child opens netlink as root, then drops to
    # nobody, which takes CAP_NET_ADMIN away for its writes.
    child = textwrap.dedent(f"""
        import os, sys
        from pci_passthrough.hygiene import from_json
        from pci_passthrough.hygiene import netlink as nl
        links = nl.NetdevLinks({netns!r})
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        try:
            links.restore(from_json(sys.stdin.read(), "journal"))
        except nl.NetdevPermissionDenied as exc:
            print(exc)
            sys.exit(3)
        """)
    result = subprocess.run([sys.executable, "-c", child],
                            input=to_json(journal), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert f"set the MTU to 1500 of netdev {VF}" in result.stdout
    assert "CAP_NET_ADMIN" in result.stdout
    assert _fresh(netns)[1] == 9000

