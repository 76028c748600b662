"""Explain: for every device of the last scan, whether it serves a
request and if not the first reason the filter chain gives; and whether
a claim of so many ports would succeed, by making the selection a claim
makes."""

from collections.abc import Callable, Collection

from pci_passthrough.model.claims import DeviceVerdict, Explanation
from pci_passthrough.model.pci_address import address_sort_key
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker.filters import HostFacts, Request, why_not

_UNASSIGNABLE = "not assignable: no device_spec matches it"


def explain(inventory: Inventory, facts: HostFacts,
            req: Request, label: str, count: int,
            pick: Callable[[Request], str | None]) -> Explanation:
    """Every device's verdict for ``req``; satisfiable when ``pick``
    finds a device for each of ``count`` ports in turn."""
    entries = inventory.entries
    verdicts = []
    for address in sorted([*entries, *inventory.unassignable],
                          key=address_sort_key):
        entry = entries.get(address)
        reason: str | None = _UNASSIGNABLE
        if entry is not None:
            reason = why_not(entry, req, facts)
        verdicts.append(DeviceVerdict(address, reason is None, reason))
    picked = 0
    while picked < count:
        found = pick(req)
        if found is None:
            break
        req = req.after(found, inventory.parent(found))
        picked += 1
    return Explanation(flavor=label, count=count,
                       satisfiable=picked == count, devices=tuple(verdicts))


def within_reason(explanation: Explanation,
                  allowed: Collection[str]) -> str:
    """Why none of the devices a port was confined to serves it."""
    shown = [f"{v.address}: {v.reason or 'serves'}"
             for v in explanation.devices if v.address in allowed]
    if not shown:
        return "none of the devices it was allocated is on this host"
    return ("none of the devices it was allocated serves it ("
            + "; ".join(shown) + ")")
