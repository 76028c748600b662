"""The states of a claimed port, the one table of their transitions, and
the repairs reconciliation makes.

A port of an instance starts with no claim (NONE), is claimed (a device
held, no network yet), then plugged (its network defined and active on
this host), and ends released (its network deleted, its device freed, its
row gone).  A live migration adds two leased states: on the destination
the ports are INCOMING until the migration is confirmed (then PLUGGED) or
aborted (then RELEASED); on the source they are OUTGOING until it
completes (RELEASED) or rolls back (PLUGGED).

NONE and RELEASED are never stored: they name the absence of a row
before a claim and after a release.  The ledger stores the value of one
of the STORED states; a row holding anything else is refused.

Every state change goes through check_transition(); TRANSITIONS is the
only place that says which changes are allowed.  A state moving to
itself is listed where an operation is idempotent (plugging a plugged
port again).
"""

import enum
from collections.abc import Mapping

from pci_passthrough import exception


class PortState(enum.StrEnum):
    NONE = "none"
    CLAIMED = "claimed"
    PLUGGED = "plugged"
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    RELEASED = "released"


#: The states a ledger row can hold.
STORED: frozenset[PortState] = frozenset({
    PortState.CLAIMED, PortState.PLUGGED, PortState.INCOMING,
    PortState.OUTGOING})

#: The states in which the port's network exists on this host: reconcile
#: restores it, and a failed plug leaves it alone (a guest may use it).
NETWORKED: frozenset[PortState] = frozenset({
    PortState.PLUGGED, PortState.INCOMING, PortState.OUTGOING})

_S = PortState

#: state -> the states it may change to.
TRANSITIONS: Mapping[PortState, frozenset[PortState]] = {
    # claim; or the destination's claim for an incoming migration.
    _S.NONE: frozenset({_S.CLAIMED, _S.INCOMING}),
    # plug; release (destroy before boot, or a failed boot).
    _S.CLAIMED: frozenset({_S.PLUGGED, _S.RELEASED}),
    # plug again (idempotent); migration starts here as the source;
    # release (destroy).
    _S.PLUGGED: frozenset({_S.PLUGGED, _S.OUTGOING, _S.RELEASED}),
    # destination: networks (re)defined under the lease; migration
    # confirmed; migration aborted or lease expired.
    _S.INCOMING: frozenset({_S.INCOMING, _S.PLUGGED, _S.RELEASED}),
    # source: networks re-ensured; migration rolled back; migration
    # completed.
    _S.OUTGOING: frozenset({_S.OUTGOING, _S.PLUGGED, _S.RELEASED}),
    _S.RELEASED: frozenset(),
}


def check_transition(instance: str, port: int | str, old: str,
                     new: str) -> PortState:
    """``new`` as a PortState when the table allows ``old`` -> ``new``.

    :raises InvalidStateTransition: naming the instance, the port and both
        states, and what ``old`` may change to.
    """
    try:
        before, after = PortState(old), PortState(new)
    except ValueError:
        allowed = frozenset[PortState]()
    else:
        allowed = TRANSITIONS[before]
        if after in allowed:
            return after
    raise exception.InvalidStateTransition(
        instance=instance, port=port, old=old, new=new,
        allowed=", ".join(sorted(allowed)) or "nothing")


class Repair(enum.StrEnum):
    """What reconciliation did to one network."""

    #: A network of ours whose instance holds no claim here.
    DELETED = "deleted"
    #: A plugged port's network was missing.
    RESTORED = "restored"
    #: The network held another netdev or VLAN than the ledger says.
    REWRITTEN = "rewritten"
