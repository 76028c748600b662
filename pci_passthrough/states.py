"""The states of a claimed port.

A port is claimed (a device held, no network yet), then plugged (its
network defined and active on this host).  The ledger stores the value
of a PortState; a row whose state is not one of them is refused.
"""

import enum


class PortState(enum.StrEnum):
    CLAIMED = "claimed"
    PLUGGED = "plugged"
