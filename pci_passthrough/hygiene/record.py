"""The state of a VF's netdev as a frozen record, and what differs.

A record is checked when it is built, whether from netlink or from a
journal: a record that exists can be written back to the kernel.
"""

import dataclasses
import enum
import re

from pci_passthrough.exception import (
    InvalidNetdevState,
    NetdevStateMismatch,
)
from pci_passthrough.model.netdev_name import EXPECTED as NETDEV_EXPECTED
from pci_passthrough.model.netdev_name import is_valid_netdev_name

# Ethernet's limits in the kernel (ETH_MIN_MTU, ETH_MAX_MTU): every VF
# netdev the library plugs is Ethernet.
MIN_MTU = 68
MAX_MTU = 65535
# do_setvfinfo() refuses a VLAN above 4095 or a QoS above 7.
MAX_VLAN = 4095
MAX_QOS = 7
VLAN_802_1Q = 0x8100
VLAN_802_1AD = 0x88A8
VLAN_PROTOS = (VLAN_802_1Q, VLAN_802_1AD)
# The SR-IOV capability counts VFs in 16 bits.
MAX_VF_INDEX = 0xFFFE
ZERO_MAC = "00:00:00:00:00:00"

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", re.ASCII)
MAC_EXPECTED = ("six lower-case hex octets such as 02:00:5e:10:00:01, "
                "not a multicast address")


def is_valid_mac(value: object) -> bool:
    """Whether ``value`` is a canonical, non-multicast Ethernet MAC."""
    return (isinstance(value, str) and _MAC.fullmatch(value) is not None
            and not int(value[:2], 16) & 1)


def _bad(source: str, field: str, value: object, expected: str
         ) -> InvalidNetdevState:
    return InvalidNetdevState(source=source, field=field,
                              reason=f"got {value!r}", expected=expected)


def _check_int(source: str, field: str, value: object, low: int,
               high: int) -> None:
    # bool is an int to Python, never to a journal.
    if type(value) is not int or not low <= value <= high:
        raise _bad(source, field, value, f"an integer {low}..{high}")


def _check_flag(source: str, field: str, value: object,
                optional: bool) -> None:
    if type(value) is bool or (optional and value is None):
        return
    raise _bad(source, field, value,
               "true, false or null" if optional else "true or false")


@dataclasses.dataclass(frozen=True, slots=True)
class VfState:
    """What a PF reports of one of its VFs (netlink IFLA_VF_INFO).

    ``mac`` is the administrative MAC the PF enforces, all zeroes when
    none is set; ``vlan`` 0 is no VLAN.  ``spoof_check`` and ``trust``
    are None when the PF driver does not report them.
    """

    pf: str
    index: int
    mac: str = ZERO_MAC
    vlan: int = 0
    qos: int = 0
    vlan_proto: int = VLAN_802_1Q
    spoof_check: bool | None = None
    trust: bool | None = None

    def __post_init__(self) -> None:
        source = f"VF {self.index!r} of PF {self.pf!r}"
        if not is_valid_netdev_name(self.pf):
            raise _bad(source, "vf.pf", self.pf, NETDEV_EXPECTED)
        _check_int(source, "vf.index", self.index, 0, MAX_VF_INDEX)
        if not is_valid_mac(self.mac):
            raise _bad(source, "vf.mac", self.mac,
                       MAC_EXPECTED + f" ({ZERO_MAC}: none set)")
        _check_int(source, "vf.vlan", self.vlan, 0, MAX_VLAN)
        _check_int(source, "vf.qos", self.qos, 0, MAX_QOS)
        if type(self.vlan_proto) is not int or (
                self.vlan_proto not in VLAN_PROTOS):
            raise _bad(source, "vf.vlan_proto", self.vlan_proto,
                       f"{VLAN_802_1Q} (802.1Q) or {VLAN_802_1AD} "
                       f"(802.1ad)")
        _check_flag(source, "vf.spoof_check", self.spoof_check, True)
        _check_flag(source, "vf.trust", self.trust, True)

    @property
    def key(self) -> tuple[str, int]:
        return (self.pf, self.index)


@dataclasses.dataclass(frozen=True, slots=True)
class NetdevState:
    """A netdev's MAC, MTU and administrative state, and, for a VF whose
    PF reports it, what the PF holds for the VF."""

    netdev: str
    mac: str
    mtu: int
    up: bool
    vf: VfState | None = None

    def __post_init__(self) -> None:
        source = f"netdev {self.netdev!r}"
        if not is_valid_netdev_name(self.netdev):
            raise _bad(source, "netdev", self.netdev, NETDEV_EXPECTED)
        if not is_valid_mac(self.mac):
            raise _bad(source, "mac", self.mac, MAC_EXPECTED)
        _check_int(source, "mtu", self.mtu, MIN_MTU, MAX_MTU)
        _check_flag(source, "up", self.up, False)
        if self.vf is not None and not isinstance(self.vf, VfState):
            raise _bad(source, "vf", self.vf, "a VfState or None")


Value = str | int | bool | None


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """One field whose journalled value differs from the current one."""

    field: str
    journal: Value
    current: Value

    def __str__(self) -> str:
        return f"{self.field}: {self.current!r} (journal: {self.journal!r})"


_NETDEV_FIELDS = ("mac", "mtu", "up")
VF_FIELDS = ("mac", "vlan", "qos", "vlan_proto", "spoof_check", "trust")


def diff(journal: NetdevState, current: NetdevState
         ) -> tuple[Difference, ...]:
    """What differs between the journalled and the current state.

    VF fields are compared when the journal holds them; a flag the
    journal does not know (None) is not compared.  The VF fields come
    first, in the order a restore writes them.

    :raises NetdevStateMismatch: the two records name different netdevs
        or different VFs.
    """
    jvf, cvf = journal.vf, current.vf
    if journal.netdev != current.netdev or (
            jvf is not None and cvf is not None and jvf.key != cvf.key):
        raise NetdevStateMismatch(journal=_describe(journal),
                                  current=_describe(current))
    found: list[Difference] = []
    if jvf is not None:
        if cvf is None:
            found.append(Difference(
                "vf", f"VF {jvf.index} of PF {jvf.pf}", None))
        else:
            for name in VF_FIELDS:
                want, have = getattr(jvf, name), getattr(cvf, name)
                if want is not None and want != have:
                    found.append(Difference(f"vf.{name}", want, have))
    for name in _NETDEV_FIELDS:
        want, have = getattr(journal, name), getattr(current, name)
        if want != have:
            found.append(Difference(name, want, have))
    return tuple(found)


def _describe(state: NetdevState) -> str:
    if state.vf is None:
        return f"netdev {state.netdev}"
    return (f"netdev {state.netdev} (VF {state.vf.index} of PF "
            f"{state.vf.pf})")


class StepKind(enum.StrEnum):
    """What one restore step writes, in the order a restore runs them."""

    VF_MAC = "set the admin MAC"
    VF_VLAN = "set the VLAN"
    VF_SPOOF_CHECK = "set spoof checking"
    VF_TRUST = "set trust"
    LINK_DOWN = "set the link down before changing the MAC"
    MAC = "set the MAC"
    MTU = "set the MTU"
    ADMIN_STATE = "set the administrative state"


@dataclasses.dataclass(frozen=True, slots=True)
class RestoreStep:
    kind: StepKind
    #: The value written: a MAC, a number, a flag, or for VF_VLAN the
    #: (vlan, qos, protocol) triple.
    value: str | int | bool | tuple[int, int, int]

    def __str__(self) -> str:
        return f"{self.kind.value} to {self.value!r}"


def plan_vf_steps(journal: NetdevState, current: NetdevState
                  ) -> tuple[RestoreStep, ...]:
    """The writes on the PF that give the VF its journalled settings.

    They come before the netdev's own: a PF driver may reset the VF when
    its admin MAC or trust changes, and the reset can change the VF
    netdev's MAC and link; the netdev is read again after them.
    """
    jvf, cvf = journal.vf, current.vf
    if jvf is None or cvf is None:
        return ()
    diff(journal, current)  # refuses two different VFs
    steps = []
    if jvf.mac != cvf.mac:
        steps.append(RestoreStep(StepKind.VF_MAC, jvf.mac))
    vlan = (jvf.vlan, jvf.qos, jvf.vlan_proto)
    if vlan != (cvf.vlan, cvf.qos, cvf.vlan_proto):
        steps.append(RestoreStep(StepKind.VF_VLAN, vlan))
    if jvf.spoof_check is not None and jvf.spoof_check != cvf.spoof_check:
        steps.append(RestoreStep(StepKind.VF_SPOOF_CHECK, jvf.spoof_check))
    if jvf.trust is not None and jvf.trust != cvf.trust:
        steps.append(RestoreStep(StepKind.VF_TRUST, jvf.trust))
    return tuple(steps)


def plan_netdev_steps(journal: NetdevState, current: NetdevState
                      ) -> tuple[RestoreStep, ...]:
    """The writes on the netdev itself that give it its journalled MAC,
    MTU and administrative state, only those that differ.

    A MAC is changed while the link is down: many drivers refuse to
    change the MAC of a running netdev (EBUSY), and netlink cannot tell
    which.  The administrative state comes last.
    """
    diff(journal, current)  # refuses two different netdevs
    steps = []
    link_up = current.up
    if journal.mac != current.mac:
        if link_up:
            steps.append(RestoreStep(StepKind.LINK_DOWN, False))
            link_up = False
        steps.append(RestoreStep(StepKind.MAC, journal.mac))
    if journal.mtu != current.mtu:
        steps.append(RestoreStep(StepKind.MTU, journal.mtu))
    if journal.up != link_up:
        steps.append(RestoreStep(StepKind.ADMIN_STATE, journal.up))
    return tuple(steps)
