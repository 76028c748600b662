"""doctor's checks of the migration leases.

A lease that ran out is kept while its domain exists here or the network
driver cannot tell: reported, never repaired (only confirming or
aborting the migration, or removing the domain, ends it safely).

A lease whose start lies ahead of the wall clock was started before the
clock was stepped back.  Within its boot the boot clock still times it;
after a reboot nothing could, and it would be held until the migration
is confirmed or aborted.  Its repair restarts it now, which loses
nothing: the claims and networks stay, and the lease still never ends
while the instance's domain exists."""

from pci_passthrough.doctor.host_parts import Leases
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.model.states import PortState


def lease_clock_findings(leases: Leases) -> list[Finding]:
    """A finding per lease starting ahead of the wall clock, but for
    expired incoming ones: their release is their repair."""
    expired = set(leases.expired(PortState.INCOMING))
    return [Finding(
        FindingKind.LEASE_AHEAD, f"instance {inst}",
        f"its migration lease starts {_duration(seconds)} ahead of the "
        f"wall clock: the clock was stepped back since it started",
        f"restart the lease now: its claims and networks stay, and it "
        f"runs {leases.timeout} s (option incoming_migration_timeout) "
        f"from now, or as long as the instance's domain exists here",
        fixable=True)
        for inst, seconds in sorted(leases.ahead().items())
        if inst not in expired]


def lease_overdue_findings(leases: Leases) -> list[Finding]:
    """A finding per incoming lease that ran out but is kept because its
    domain exists here or cannot be told: a migration nova neither
    confirmed nor aborted holds its VFs until someone does."""
    return [Finding(
        FindingKind.LEASE_OVERDUE, f"instance {inst}",
        f"its incoming migration lease ran out (option "
        f"incoming_migration_timeout, {leases.timeout} s) unconfirmed, "
        f"but its domain exists here or the network driver cannot tell: "
        f"its claims are kept",
        "if the guest runs here, confirm the migration "
        "(complete_incoming_migration, nova's "
        "post_live_migration_at_destination); if it does not, abort it "
        "(abort_incoming_migration) or remove the domain, and doctor "
        "--fix then frees its VFs", fixable=False)
        for inst in leases.overdue()]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
