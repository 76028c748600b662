"""The clocks a migration lease is timed on.

The wall clock alone cannot time a lease: an operator or NTP may step
it hours either way.  The boot clock (CLOCK_BOOTTIME: seconds since
boot, suspended time included) never steps, and keeps counting across
restarts of the agent, but only within one boot: its readings are
compared only when both carry the same boot id.  A lease started in
another boot is timed on the wall clock, and one whose start lies ahead
of it cannot be timed at all (doctor reports it).
"""

import re
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from pci_passthrough.ledger import LeaseStart

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@runtime_checkable
class LeaseClock(Protocol):
    """What a migration lease is timed on (HostAgent's ``clock``)."""

    def wall(self) -> float:
        """Seconds since the epoch."""

    def boot(self) -> float | None:
        """Seconds since this boot, counting suspended time; None
        without a boot clock."""

    def boot_id(self) -> str | None:
        """This boot's id, a UUID; None when unknown."""


class SystemClock:
    """The host's clocks: time.time, CLOCK_BOOTTIME and the kernel's
    boot id (read once: it does not change while the process runs)."""

    def __init__(self, boot_id_path: str = BOOT_ID_PATH) -> None:
        self._boot_id = read_boot_id(boot_id_path)

    def wall(self) -> float:
        return time.time()

    def boot(self) -> float | None:
        if self._boot_id is None:
            return None
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def boot_id(self) -> str | None:
        return self._boot_id


class WallClock:
    """A clock of seconds since the epoch alone (a plain callable, as
    HostAgent accepted before): leases are timed on it as after a
    reboot."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self.wall = wall

    def boot(self) -> None:
        return None

    def boot_id(self) -> None:
        return None


def read_boot_id(path: str = BOOT_ID_PATH) -> str | None:
    """The kernel's boot id; None when it cannot be read or is not a
    UUID (the boot clock is then not used)."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, ValueError):
        return None
    return text if _UUID.match(text) else None


def as_clock(clock: LeaseClock | Callable[[], float]) -> LeaseClock:
    """``clock`` as a LeaseClock; a plain callable is a WallClock."""
    if isinstance(clock, LeaseClock):
        return clock
    return WallClock(clock)


def lease_start(clock: LeaseClock) -> LeaseStart:
    """Now, as a lease's start."""
    boot, boot_id = clock.boot(), clock.boot_id()
    if boot is None or boot_id is None:
        return LeaseStart(clock.wall())
    return LeaseStart(clock.wall(), boot, boot_id)


def elapsed(start: LeaseStart, clock: LeaseClock) -> float | None:
    """Seconds since ``start``: on the boot clock when it was read in
    this boot, else on the wall clock; None when that lies ahead."""
    boot_id = clock.boot_id()
    if start.boot is not None and boot_id is not None and \
            start.boot_id == boot_id:
        now = clock.boot()
        if now is not None and now >= start.boot:
            return now - start.boot
    ran = clock.wall() - start.wall
    return ran if ran >= 0 else None


def ahead(start: LeaseStart, clock: LeaseClock) -> float:
    """How far the start lies ahead of the wall clock, in seconds (0
    when it does not)."""
    return max(0.0, start.wall - clock.wall())
