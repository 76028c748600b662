"""When a migration lease started, as the ledger keeps it."""

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseStart:
    """The start of one instance's migration lease, read on the wall
    clock and, where the host has one, on its boot clock.

    A duration read on the boot clock survives steps of the wall clock
    and restarts of the process, but only within the boot it was read
    in (``boot_id``).
    """

    #: Seconds since the epoch.
    wall: float
    #: Seconds since the boot ``boot_id`` started (CLOCK_BOOTTIME, which
    #: counts suspended time); None when the start was not read on a
    #: boot clock (a lease from a version 3 ledger).
    boot: float | None = None
    #: The id of that boot (/proc/sys/kernel/random/boot_id).
    boot_id: str | None = None
