"""Errors of VF hygiene (reading and restoring a netdev's state).

They subclass the library's base error so callers can catch them as any
other; they move into :mod:`pci_passthrough.exception` once the agent
uses them.
"""

from pci_passthrough.exception import PciPassthroughError


class InvalidNetdevState(PciPassthroughError):
    """A state record or its journal text does not validate."""

    msg_fmt = ("Invalid netdev state (%(source)s), field %(field)s: "
               "%(reason)s; expected %(expected)s.")


class NetdevStateMismatch(PciPassthroughError):
    msg_fmt = ("Cannot compare the state journalled for %(journal)s with "
               "the state of %(current)s: they are different devices.")


class NetnsUnavailable(PciPassthroughError):
    msg_fmt = ("Cannot open netlink in network namespace %(netns)s: "
               "%(reason)s.")


class NetdevStateError(PciPassthroughError):
    """A netlink step on one netdev failed; ``step`` says which."""

    msg_fmt = "Cannot %(step)s of netdev %(netdev)s%(where)s: %(reason)s."


class NetdevGone(NetdevStateError):
    msg_fmt = ("Cannot %(step)s of netdev %(netdev)s%(where)s: no such "
               "netdev (removed or renamed; %(reason)s).")


class NetdevPermissionDenied(NetdevStateError):
    msg_fmt = ("Cannot %(step)s of netdev %(netdev)s%(where)s: permission "
               "denied (%(reason)s); changing a netdev needs "
               "CAP_NET_ADMIN in its network namespace.")
