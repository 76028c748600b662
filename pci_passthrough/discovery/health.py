"""Whether each SR-IOV PF can serve its VFs now, from one scan.

A PF is unhealthy when its driver is unbound, or when its netdev reports
no carrier (operstate down, lowerlayerdown or notpresent): its VFs then
carry no traffic, so they are given to no one.  Only what the scanner
reads anyway is used (the PF's driver link and its netdev's operstate,
once per PF).  An operstate that cannot be read, or a PF without netdev
(on vfio-pci, say), says nothing: such a PF is not called unhealthy.
"""

from collections.abc import Iterable

from pci_passthrough.model.device import PciDevice

#: Operstates (RFC 2863) of a netdev without carrier.
NO_CARRIER = frozenset({"down", "lowerlayerdown", "notpresent"})


def pf_problem(pf: PciDevice) -> str | None:
    """Why the PF cannot serve its VFs now, or None."""
    if pf.driver is None:
        return "has no driver (unbound)"
    if pf.netdev is not None and pf.link_state in NO_CARRIER:
        return (f"netdev {pf.netdev} lost carrier (operstate "
                f"{pf.link_state})")
    return None


def pf_problems(devices: Iterable[PciDevice]) -> dict[str, str]:
    """PF address -> its problem, for every unhealthy PF in ``devices``."""
    problems = {}
    for dev in devices:
        if dev.is_pf:
            problem = pf_problem(dev)
            if problem is not None:
                problems[dev.address] = problem
    return problems
