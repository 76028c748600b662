"""Read and restore a netdev's state over netlink (pyroute2).

Netlink is spoken through pyroute2, never by running ``ip``: no process
per call, no parsing of a tool's output, and errors arrive as errno
values.  A :class:`NetdevLinks` holds one netlink socket, in the current
network namespace or in a named one (pyroute2 opens it from a short-lived
child process, so the caller's own namespace never changes).

Every failure is a library error naming the netdev and the step.
"""

import errno
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped]
    NetlinkError,
)

from pci_passthrough.exception import (
    NetdevGone,
    NetdevPermissionDenied,
    NetdevStateError,
    NetnsUnavailable,
)
from pci_passthrough.hygiene.record import (
    VLAN_802_1Q,
    NetdevState,
    RestoreStep,
    StepKind,
    VfState,
    diff,
    plan_netdev_steps,
    plan_vf_steps,
)
from pci_passthrough.model.netdev_name import check_netdev

LOG = logging.getLogger(__name__)

IFF_UP = 0x1
# RTEXT_FILTER_VF asks for IFLA_VFINFO_LIST; RTEXT_FILTER_SKIP_STATS
# leaves out per-VF counters, which would make the reply of a PF with
# hundreds of VFs several times larger.
EXT_MASK_VF = 0x1 | 0x8
# The kernel reports spoof check and trust as -1 (u32) when the PF
# driver does not fill them in.
_UNREPORTED = 0xFFFFFFFF
_NETNS_DIR = "/run/netns"

T = TypeVar("T")


def parse_link(msg: Any, netdev: str) -> tuple[int, NetdevState]:
    """The interface index and state of one RTM_NEWLINK message.

    :raises NetdevStateError: the message is not of an Ethernet netdev.
    """
    name = msg.get_attr("IFLA_IFNAME")
    if name != netdev:
        raise NetdevStateError(netdev=netdev, step="read the link",
                               where="",
                               reason=f"netlink answered for {name!r}")
    mac = msg.get_attr("IFLA_ADDRESS")
    mtu = msg.get_attr("IFLA_MTU")
    return msg["index"], NetdevState(netdev=netdev, mac=mac, mtu=mtu,
                                     up=bool(msg["flags"] & IFF_UP))


def parse_vf_info(msg: Any, pf: str, index: int) -> VfState | None:
    """What a PF's RTM_NEWLINK message (read with :data:`EXT_MASK_VF`)
    says of its VF ``index``; None when the PF reports no VF at all.

    :raises NetdevStateError: the PF reports VFs, but not this one.
    """
    vflist = msg.get_attr("IFLA_VFINFO_LIST")
    infos = [] if vflist is None else list(vflist.get_attrs("IFLA_VF_INFO"))
    if not infos:
        return None
    for info in infos:
        mac_attr = info.get_attr("IFLA_VF_MAC")
        if mac_attr is None or mac_attr["vf"] != index:
            continue
        vlan = info.get_attr("IFLA_VF_VLAN") or {"vlan": 0, "qos": 0}
        proto = VLAN_802_1Q
        vlist = info.get_attr("IFLA_VF_VLAN_LIST")
        if vlist is not None:
            for entry in vlist.get_attrs("IFLA_VF_VLAN_INFO"):
                proto = entry["proto"]
                break
        return VfState(pf=pf, index=index, mac=mac_attr["mac"],
                       vlan=vlan["vlan"], qos=vlan["qos"],
                       vlan_proto=proto,
                       spoof_check=_flag(info, "IFLA_VF_SPOOFCHK",
                                         "spoofchk"),
                       trust=_flag(info, "IFLA_VF_TRUST", "trust"))
    raise NetdevStateError(
        netdev=pf, step=f"read the settings of VF {index}", where="",
        reason=f"the PF reports {len(infos)} VFs but not VF {index}")


def _flag(info: Any, attr: str, key: str) -> bool | None:
    value = info.get_attr(attr)
    if value is None or value[key] == _UNREPORTED:
        return None
    return bool(value[key])


class NetdevLinks:
    """A netlink socket to read and restore netdev states.

    :param netns: a network namespace name (under /run/netns) or path
        (``/proc/PID/ns/net``); None for the caller's own namespace.
    :raises NetnsUnavailable: the namespace does not exist or netlink
        cannot be opened there.

    One instance serves one thread at a time.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._where = "" if netns is None else (
            f" in network namespace {netns}")
        if netns is not None:
            if not isinstance(netns, str) or not netns or "\0" in netns:
                raise NetnsUnavailable(
                    netns=repr(netns),
                    reason="expected a namespace name or path")
            path = netns if "/" in netns else os.path.join(_NETNS_DIR,
                                                           netns)
            # Checked here: pyroute2 would create a missing namespace.
            if not os.path.exists(path):
                raise NetnsUnavailable(netns=netns,
                                       reason=f"{path} does not exist")
        try:
            self._ipr = (IPRoute() if netns is None
                         else IPRoute(netns=netns, flags=0))
        except (OSError, NetlinkError, TimeoutError) as exc:
            raise NetnsUnavailable(netns=netns or "(current)",
                                   reason=str(exc)) from exc

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> "NetdevLinks":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------

    def read(self, netdev: str, vf: tuple[str, int] | None = None
             ) -> NetdevState:
        """The current state of ``netdev``.

        :param vf: (PF netdev, VF index) when ``netdev`` is a VF; the
            PF's report of the VF is read too, where the PF gives one.
        :raises InvalidNetdevName: a name the kernel would not accept.
        :raises NetdevStateError: and its subclasses, naming the step.
        """
        return self._read(netdev, vf)[1]

    def _read(self, netdev: str, vf: tuple[str, int] | None
              ) -> tuple[int, NetdevState]:
        check_netdev(netdev)
        if vf is not None:
            check_netdev(vf[0], device=f"PF of {netdev}")
        (msg,) = self._netlink(netdev, "read the link", lambda: self._ipr.link(
            "get", ifname=netdev))
        index, state = self._parse(netdev, "read the link",
                                   lambda: parse_link(msg, netdev))
        if vf is None:
            return index, state
        pf, vf_index = vf
        step = f"read the settings of VF {vf_index} on PF {pf}"
        (pf_msg,) = self._netlink(netdev, step, lambda: self._ipr.link(
            "get", ifname=pf, ext_mask=EXT_MASK_VF))
        vf_state = self._parse(netdev, step,
                               lambda: parse_vf_info(pf_msg, pf, vf_index))
        return index, NetdevState(netdev=state.netdev, mac=state.mac,
                                  mtu=state.mtu, up=state.up, vf=vf_state)

    def _parse(self, netdev: str, step: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except NetdevStateError:
            raise
        except Exception as exc:
            # A record refuses what the kernel gave (an address that is
            # not Ethernet, an MTU out of range): say where it came from.
            raise NetdevStateError(netdev=netdev, step=step,
                                   where=self._where,
                                   reason=str(exc).rstrip(".")) from exc

    def _netlink(self, netdev: str, step: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except NetlinkError as exc:
            raise self._error(netdev, step, exc.code,
                              os.strerror(exc.code)) from exc
        except OSError as exc:
            raise self._error(netdev, step, exc.errno or 0,
                              exc.strerror or str(exc)) from exc

    def _error(self, netdev: str, step: str, code: int, text: str
               ) -> NetdevStateError:
        reason = f"{text} (errno {code})"
        cls: type[NetdevStateError] = NetdevStateError
        if code in (errno.ENODEV, errno.ENOENT):
            cls = NetdevGone
        elif code in (errno.EPERM, errno.EACCES):
            cls = NetdevPermissionDenied
        return cls(netdev=netdev, step=step, where=self._where,
                   reason=reason)

    # -- restoring -------------------------------------------------------

    def restore(self, journal: NetdevState) -> tuple[RestoreStep, ...]:
        """Give the netdev (and its VF settings) the journalled state.

        Only what differs is written: first the VF's settings on its PF,
        then, after reading the netdev again, its MAC (with the link
        down), MTU and last its administrative state.  The result is
        read back and compared.

        :returns: the steps written, in order; empty when nothing
            differed.
        :raises NetdevStateError: naming the netdev and the step that
            failed; a link this call set down is set up again first.
        """
        vf_key = None if journal.vf is None else journal.vf.key
        index, current = self._read(journal.netdev, vf_key)
        if journal.vf is not None and current.vf is None:
            raise NetdevStateError(
                netdev=journal.netdev, step="read the VF settings",
                where=self._where,
                reason=f"PF {journal.vf.pf} no longer reports its VFs")
        done: list[RestoreStep] = []
        vf_steps = plan_vf_steps(journal, current)
        if vf_steps:
            assert journal.vf is not None
            pf_index = self._pf_index(journal.netdev, journal.vf.pf)
            for step in vf_steps:
                self._write_vf(journal, pf_index, step)
                done.append(step)
            index, current = self._read(journal.netdev, vf_key)
        netdev_steps = plan_netdev_steps(journal, current)
        try:
            for step in netdev_steps:
                self._write_link(journal.netdev, index, step)
                done.append(step)
        except NetdevStateError:
            # The link was set down only to change the MAC: set it up
            # again, as it was and as the journal wants it.
            if journal.up and any(s.kind is StepKind.LINK_DOWN
                                  for s in done):
                self._undo_down(journal.netdev, index)
            raise
        _, after = self._read(journal.netdev, vf_key)
        left = diff(journal, after)
        if left:
            raise NetdevStateError(
                netdev=journal.netdev, step="verify the restored state",
                where=self._where,
                reason="still differs after restore: "
                       + "; ".join(map(str, left)))
        if done:
            LOG.info("Restored netdev %s%s: %s", journal.netdev,
                     self._where, "; ".join(map(str, done)))
        return tuple(done)

    def _pf_index(self, netdev: str, pf: str) -> int:
        step = f"look up PF {pf}"
        found: list[int] = self._netlink(
            netdev, step, lambda: list(self._ipr.link_lookup(ifname=pf)))
        if not found:
            raise NetdevGone(netdev=netdev, step=step, where=self._where,
                             reason=f"PF {pf} not found")
        return found[0]

    def _write_vf(self, journal: NetdevState, pf_index: int,
                  step: RestoreStep) -> None:
        assert journal.vf is not None
        vf = journal.vf
        spec: dict[str, Any] = {"vf": vf.index}
        if step.kind is StepKind.VF_MAC:
            spec["mac"] = vf.mac
        elif step.kind is StepKind.VF_VLAN:
            if vf.vlan_proto == VLAN_802_1Q:
                spec["vlan"] = {"vlan": vf.vlan, "qos": vf.qos}
            else:
                # Only IFLA_VF_VLAN_LIST carries the protocol.
                spec["vlan"] = [{"vlan": vf.vlan, "qos": vf.qos,
                                 "proto": vf.vlan_proto}]
        elif step.kind is StepKind.VF_SPOOF_CHECK:
            spec["spoofchk"] = int(bool(vf.spoof_check))
        elif step.kind is StepKind.VF_TRUST:
            spec["trust"] = int(bool(vf.trust))
        else:
            raise AssertionError(step)
        label = f"{step.kind.value} of VF {vf.index} on PF {vf.pf}"
        self._netlink(journal.netdev, label, lambda: self._ipr.link(
            "set", index=pf_index, vf=spec))

    def _write_link(self, netdev: str, index: int,
                    step: RestoreStep) -> None:
        args: dict[str, Any]
        if step.kind is StepKind.LINK_DOWN:
            args = {"state": "down"}
        elif step.kind is StepKind.MAC:
            args = {"address": step.value}
        elif step.kind is StepKind.MTU:
            args = {"mtu": step.value}
        elif step.kind is StepKind.ADMIN_STATE:
            args = {"state": "up" if step.value else "down"}
        else:
            raise AssertionError(step)
        self._netlink(netdev, str(step), lambda: self._ipr.link(
            "set", index=index, **args))

    def _undo_down(self, netdev: str, index: int) -> None:
        try:
            self._netlink(netdev, "set the link up again after a failed "
                          "restore", lambda: self._ipr.link(
                              "set", index=index, state="up"))
        except NetdevStateError:
            LOG.exception("Netdev %s%s stays down", netdev, self._where)


@contextmanager
def links(netns: str | None = None) -> Iterator[NetdevLinks]:
    """A :class:`NetdevLinks`, closed on exit."""
    handle = NetdevLinks(netns)
    try:
        yield handle
    finally:
        handle.close()


def read_state(netdev: str, vf: tuple[str, int] | None = None,
               netns: str | None = None) -> NetdevState:
    """The current state of ``netdev`` (see :meth:`NetdevLinks.read`)."""
    with links(netns) as handle:
        return handle.read(netdev, vf)


def restore_state(journal: NetdevState, netns: str | None = None
                  ) -> tuple[RestoreStep, ...]:
    """Restore ``journal`` (see :meth:`NetdevLinks.restore`)."""
    with links(netns) as handle:
        return handle.restore(journal)
