"""What doctor reports: findings, each with its kind, the subject it
names, what is wrong and the repair.

The findings come from host_checks (the ledger against the host) and
placement_audit (against Placement); HostDoctor runs both and, with
fix, their repairs (host_repairs, placement_repair).
"""

import dataclasses
import enum
from typing import Any


class FindingKind(enum.StrEnum):
    #: A network of ours (its whole name parses) whose port holds no
    #: claim here.
    ORPHAN_NETWORK = "orphan-network"
    #: A networked port's network is not defined.
    MISSING_NETWORK = "missing-network"
    #: A networked port's network is inactive, transient or not
    #: autostarted.
    INACTIVE_NETWORK = "inactive-network"
    #: A network holds another netdev, VLAN or mode than the ledger says.
    DRIFTED_NETWORK = "drifted-network"
    #: A claimed device is gone from sysfs.
    DEVICE_GONE = "device-gone"
    #: A claimed device's netdev has another name than the ledger's.
    NETDEV_CHANGED = "netdev-changed"
    #: A free VF's netdev has an upper device (a macvtap) that no
    #: network of ours explains.
    UPPER_DEVICE = "upper-device"
    #: A free VF's netdev state, journalled before its last plug, is not
    #: restored: the VF is not handed out until it is.
    VF_NOT_RESTORED = "vf-not-restored"
    #: An incoming migration's lease ran out unconfirmed.
    LEASE_EXPIRED = "lease-expired"
    #: An incoming migration's lease ran out unconfirmed, but its domain
    #: exists here or the network driver cannot tell: it is kept.
    LEASE_OVERDUE = "lease-overdue"
    #: An outgoing migration neither completed nor aborted in time.
    STALE_OUTGOING = "stale-outgoing"
    #: A migration lease starts ahead of the wall clock (stepped back
    #: since): after a reboot it could not be timed.
    LEASE_AHEAD = "lease-ahead"
    #: A PF whose driver is unbound or whose netdev lost carrier: its
    #: free VFs are not claimable, its held ones carry no traffic.
    PF_UNHEALTHY = "pf-unhealthy"
    #: A provider of this host is missing from Placement, or its
    #: inventory or traits differ from what the host reports, or one no
    #: device is counted on any more is still there.
    PLACEMENT_PROVIDER = "placement-provider"
    #: An instance's units on this host's providers differ from the
    #: VFs the ledger says it holds.
    PLACEMENT_ALLOCATION = "placement-allocation"
    #: A consumer holds units on this host's providers that no claim
    #: here explains.
    PLACEMENT_CONSUMER = "placement-consumer"
    #: A provider of this host cannot be created: a provider of another
    #: tree holds its name.
    PLACEMENT_NAME_TAKEN = "placement-name-taken"

    @property
    def label(self) -> str:
        """The kind as a metric label value (``-`` as ``_``)."""
        return self.value.replace("-", "_")


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One thing doctor found wrong.

    :ivar subject: what it names: ``network NAME``, ``instance UUID port
        N``, ``device ADDRESS``.
    :ivar repair: what --fix does, or what the operator should do when
        doctor cannot do it safely.
    :ivar fixable: whether --fix repairs it.
    :ivar fixed: --fix repaired it.
    :ivar left: why it is still there after --fix (None when fixed or
        when no fix was asked).
    """

    kind: FindingKind
    subject: str
    problem: str
    repair: str
    fixable: bool
    fixed: bool = False
    left: str | None = None

    def unsafe(self) -> "Finding":
        """This finding, left: --fix does not repair it."""
        return dataclasses.replace(
            self, left="not safe to repair automatically: " + self.repair)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject,
                "problem": self.problem, "repair": self.repair,
                "fixable": self.fixable, "fixed": self.fixed,
                "left": self.left}


@dataclasses.dataclass(frozen=True, slots=True)
class DoctorReport:
    findings: tuple[Finding, ...]
    #: Whether repairs were asked for.
    fix: bool

    @property
    def left(self) -> tuple[Finding, ...]:
        """The findings not repaired."""
        return tuple(f for f in self.findings if not f.fixed)

    def as_dict(self) -> dict[str, Any]:
        return {"fix": self.fix, "clean": not self.left,
                "findings": [f.as_dict() for f in self.findings]}


#: The kinds whose findings compare Placement with the host; their
#: repair is one placement sync.
PLACEMENT_KINDS: frozenset[FindingKind] = frozenset({
    FindingKind.PLACEMENT_PROVIDER, FindingKind.PLACEMENT_ALLOCATION,
    FindingKind.PLACEMENT_CONSUMER, FindingKind.PLACEMENT_NAME_TAKEN})
