"""What differs between Placement and one host's provider tree and
ledger: doctor's Placement findings.

Two steps, so the comparison is a pure function: observe() reads what
Placement holds for the host (GETs only), audit() compares it with the
tree and the ledger's records.  The repair is placement sync
(Reporter.sync), whose compare-before-write changes only what differs;
audit() calls fixable exactly what sync repairs.

Nova's migration convention shapes the allocation checks: while an
instance migrates away, its units on the source host are held by the
migration's own consumer (consumer_type MIGRATION), not the instance's.
So an instance leaving this host (an outgoing port in the ledger) is not
compared, and a MIGRATION consumer is expected while one is.

A provider of ours under its former name (Nova's own pattern, carrying
Nova's COMPUTE_MANAGED_PCI_DEVICE) is one fixable finding, which sync
repairs by renaming it; its units count as the renamed provider's.
"""

import dataclasses
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.names_taken import NameTaken, name_holder
from pci_passthrough.placement.tree import (
    PciProvider,
    ProviderTree,
    inventory_problems,
    ledger_units,
)

#: Inventory fields sync writes: a difference in any is a finding.
MIGRATION_CONSUMER = "MIGRATION"

#: consumer -> resource class -> units, on one provider.
Units = dict[str, dict[str, int]]


@dataclasses.dataclass(frozen=True, slots=True)
class ObservedProvider:
    """One non-root provider of the host's tree, as Placement has it."""

    name: str
    uuid: str
    inventories: dict[str, dict[str, Any]]
    traits: frozenset[str]
    #: consumer -> resource class -> units.
    allocations: Units

    @property
    def owned(self) -> bool:
        """Reported by this library (it carries the owner trait)."""
        return names.OWNER_TRAIT in self.traits


@dataclasses.dataclass(frozen=True, slots=True)
class Observed:
    """What Placement holds for one host."""

    nodename: str
    #: None: the root provider does not exist.
    root_uuid: str | None
    #: The root's other providers, by name.
    providers: dict[str, ObservedProvider]
    #: consumer_type of each consumer on the providers the ledger does
    #: not name (None when Placement gives none).
    consumer_types: dict[str, str | None]
    #: Providers of other trees named as this host names its own
    #: (``<nodename>_...``), by name.
    elsewhere: dict[str, NameTaken] = dataclasses.field(
        default_factory=dict)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def observe(client: PlacementClient, nodename: str,
            known: Iterable[str] = (),
            names: Iterable[str] = ()) -> Observed:
    """Read the host's providers, their inventories, traits and
    allocations, the type of each consumer not in ``known``, and who
    holds each of the provider ``names`` (the host's tree's) that the
    host's tree in Placement lacks.

    :raises PlacementUnavailable: Placement does not answer.
    :raises PlacementRequestFailed: it refuses a read, or answers in a
        shape that is not Placement's.
    """
    path = f"/resource_providers?name={_q(nodename)}"
    try:
        found = client.get(path).body["resource_providers"]
        if not found:
            return Observed(nodename, None, {}, {})
        root = _text(found[0]["uuid"])
        path = f"/resource_providers?in_tree={_q(root)}"
        listed = client.get(path).body["resource_providers"]
        providers = {}
        for rp in listed:
            uuid = _text(rp["uuid"])
            if uuid == root:
                continue
            providers[_text(rp["name"])] = _provider(client, rp, uuid)
        # Names are unique: one the host's tree lacks may be held in
        # another tree, which sync cannot fix.  One exact lookup per
        # missing name, never a listing of the whole fleet.
        elsewhere = {}
        for name in sorted(set(names) - set(providers)):
            holder = name_holder(client, name, root)
            if holder is not None:
                elsewhere[name] = holder
        known = set(known)
        types: dict[str, str | None] = {}
        for provider in providers.values():
            for consumer in provider.allocations:
                if consumer in known or consumer in types:
                    continue
                path = f"/allocations/{_q(consumer)}"
                kind = client.get(path).body.get("consumer_type")
                types[consumer] = None if kind is None else _text(kind)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise exception.PlacementRequestFailed(
            method="GET", path=path, status=200,
            detail=f"an answer not in Placement's format "
                   f"({type(exc).__name__}: {exc})") from None
    return Observed(nodename, root, providers, types, elsewhere)


def _provider(client: PlacementClient, listed: Mapping[str, Any],
              uuid: str) -> ObservedProvider:
    base = f"/resource_providers/{_q(uuid)}"
    inventories = client.get(f"{base}/inventories").body["inventories"]
    traits = client.get(f"{base}/traits").body["traits"]
    allocs = client.get(f"{base}/allocations").body["allocations"]
    return ObservedProvider(
        name=_text(listed["name"]), uuid=uuid,
        inventories={_text(rc): dict(inv)
                     for rc, inv in inventories.items()},
        traits=frozenset(_text(t) for t in traits),
        allocations={_text(c): {_text(rc): _count(n)
                                for rc, n in a["resources"].items()}
                     for c, a in allocs.items()})


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r:.60}")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a unit count, got {value!r:.60}")
    return value


# -- the comparison ---------------------------------------------------------

def audit(tree: ProviderTree, records: Sequence[LedgerRecord],
          observed: Observed) -> list[Finding]:
    """The differences between Placement and the host, as findings:
    providers (kind placement-provider), instances' units
    (placement-allocation) and consumers no claim here explains
    (placement-consumer)."""
    findings = []
    if observed.root_uuid is None:
        # Not doctor's to create: nova-compute makes the root with the
        # compute node's UUID, and a root made first under another UUID
        # would stop it.
        findings.append(Finding(
            FindingKind.PLACEMENT_PROVIDER, f"provider {tree.nodename}",
            "the compute node's root provider is not in Placement, so "
            "none of this host's VFs are offered",
            "start nova-compute, which creates it with the compute "
            "node's UUID (on a host without nova-compute: "
            "pci-passthrough placement sync --create-root)",
            fixable=False))
        return findings + [Finding(
            FindingKind.PLACEMENT_PROVIDER, f"provider {p.name}",
            f"not in Placement: PF {p.pf_address}'s {p.total} VF(s) are "
            f"not offered", "doctor --fix creates it once the root "
            "provider exists", fixable=False) for p in tree.providers]
    renamed = _renamed(tree, observed)
    for provider in tree.providers:
        taken = observed.elsewhere.get(provider.name)
        if provider.name not in observed.providers and taken is not None:
            findings.append(Finding(
                FindingKind.PLACEMENT_NAME_TAKEN, f"provider {taken.name}",
                taken.problem, taken.advice, fixable=False))
            continue
        former = renamed.get(provider.name)
        if former is not None:
            findings.append(_former_name_finding(former, provider))
            continue
        findings += _provider_findings(
            provider, observed.providers.get(provider.name))
    in_tree = {p.name for p in tree.providers}
    moving = {rp.name for rp in renamed.values()}
    retired = {name: rp for name, rp in observed.providers.items()
               if rp.owned and name not in in_tree and name not in moving}
    for name in sorted(retired):
        findings += _retired_findings(retired[name])
    findings += _allocation_findings(tree, records, observed, retired,
                                     renamed)
    return findings


def _renamed(tree: ProviderTree, observed: Observed
             ) -> dict[str, ObservedProvider]:
    """Name -> our provider under that name's former one, for each
    provider of the tree that Placement has under its former name only,
    holding its class (placement sync renames it)."""
    out = {}
    for provider in tree.providers:
        former = observed.providers.get(provider.former_name or "")
        if provider.name not in observed.providers and \
                provider.name not in observed.elsewhere and \
                former is not None and former.owned and \
                set(former.inventories) <= {provider.resource_class}:
            out[provider.name] = former
    return out


def _former_name_finding(former: ObservedProvider,
                         provider: PciProvider) -> Finding:
    nova = (f" and Nova's trait {names.NOVA_PCI_TRAIT}, by which "
            f"nova-compute takes it for its own (refusing to start with "
            f"[pci] report_in_placement False, deleting it with True)"
            if names.NOVA_PCI_TRAIT in former.traits else "")
    return Finding(
        FindingKind.PLACEMENT_PROVIDER, f"provider {former.name}",
        f"PF {provider.pf_address}'s provider has the name this library "
        f"gave it before, which Nova gives its own PCI providers{nova}",
        f"rename it {provider.name}, keeping its UUID and allocations, "
        f"and write its traits (placement sync)", fixable=True)


def _provider_findings(provider: PciProvider,
                       rp: ObservedProvider | None) -> list[Finding]:
    subject = f"provider {provider.name}"
    repair = "write it as the host reports it (placement sync)"
    if rp is None:
        return [Finding(
            FindingKind.PLACEMENT_PROVIDER, subject,
            f"not in Placement: PF {provider.pf_address}'s "
            f"{provider.total} VF(s) are not offered",
            "create it (placement sync)", fixable=True)]
    problems = inventory_problems(rp.inventories, provider.inventory())
    missing = sorted(provider.traits - rp.traits)
    extra = sorted(rp.traits - provider.traits)
    if missing:
        problems.append("traits missing: " + ", ".join(missing))
    if extra:
        problems.append("traits the host does not report: "
                        + ", ".join(extra))
    if not problems:
        return []
    return [Finding(FindingKind.PLACEMENT_PROVIDER, subject,
                    "; ".join(problems), repair, fixable=True)]


def _retired_findings(rp: ObservedProvider) -> list[Finding]:
    subject = f"provider {rp.name}"
    held = _total(rp.allocations)
    if not held:
        return [Finding(
            FindingKind.PLACEMENT_PROVIDER, subject,
            "no device of this host is counted on it any more",
            "delete it (placement sync)", fixable=True)]
    consumers = ", ".join(sorted(rp.allocations))
    all_reserved = all(inv.get("reserved") == inv.get("total")
                       for inv in rp.inventories.values())
    problem = (f"no device of this host is counted on it, but "
               f"consumer(s) {consumers} hold {held} unit(s) on it")
    wrong, repair = [], []
    if not all_reserved:
        wrong.append("it still offers inventory")
        repair.append("reserve all of its inventory")
    if names.NOVA_PCI_TRAIT in rp.traits:
        wrong.append(f"it carries Nova's trait {names.NOVA_PCI_TRAIT}")
        repair.append("remove that trait")
    if wrong:
        return [Finding(
            FindingKind.PLACEMENT_PROVIDER, subject,
            f"{problem} and {' and '.join(wrong)}",
            f"{' and '.join(repair)}, keeping the allocations "
            f"(placement sync)", fixable=True)]
    return [Finding(
        FindingKind.PLACEMENT_PROVIDER, subject,
        problem + "; all of its inventory is reserved",
        "release or move those instances (or bring the device back); "
        "placement sync deletes it once unused", fixable=False)]


def _allocation_findings(tree: ProviderTree,
                         records: Sequence[LedgerRecord],
                         observed: Observed,
                         retired: Mapping[str, ObservedProvider],
                         renamed: Mapping[str, ObservedProvider]
                         ) -> list[Finding]:
    # An instance holding a device the tree lacks is left alone: its
    # units' provider is unknown, and doctor's device-gone finding names
    # it already.
    ledger = ledger_units(tree, records)
    in_tree = {p.name for p in tree.providers}
    ours = {name: rp for name, rp in observed.providers.items()
            if name in in_tree or name in retired}
    # Units on a provider under its former name are the renamed one's.
    ours.update(renamed)
    have: dict[str, dict[str, dict[str, int]]] = {}
    for name, rp in ours.items():
        for consumer, resources in rp.allocations.items():
            held = {rc: n for rc, n in resources.items() if n}
            if held:
                have.setdefault(consumer, {})[name] = held
    found = []
    # Units on a provider whose name another tree holds cannot be
    # written: the name-taken finding says so.
    taken = set(observed.elsewhere) - set(observed.providers)
    for consumer, want in sorted(ledger.wanted.items()):
        if have.get(consumer, {}) == want or taken & set(want):
            continue
        found.append(Finding(
            FindingKind.PLACEMENT_ALLOCATION, f"instance {consumer}",
            f"Placement holds {_shown(have.get(consumer, {}))} on this "
            f"host's providers, the ledger {_shown(want)}",
            "write its units on this host's providers from the ledger, "
            "keeping its other allocations (placement sync)",
            fixable=True))
    for consumer in sorted(set(have) - ledger.known):
        kind = observed.consumer_types.get(consumer)
        if kind == MIGRATION_CONSUMER and ledger.leaving:
            continue  # the source's units of a migration under way
        why = ("a migration's allocation, while no migration away from "
               "this host is recorded" if kind == MIGRATION_CONSUMER
               else "no claim here explains them (an instance scheduled "
                    "here and not claimed yet is one)")
        found.append(Finding(
            FindingKind.PLACEMENT_CONSUMER, f"consumer {consumer}",
            f"holds {_shown(have[consumer])}: {why}",
            f"if Nova has no instance or migration {consumer} on this "
            f"host, delete its allocation (openstack resource provider "
            f"allocation delete {consumer})", fixable=False))
    return found


def _total(allocations: Units) -> int:
    return sum(n for res in allocations.values() for n in res.values())


def _shown(units: Mapping[str, Mapping[str, int]]) -> str:
    if not units:
        return "nothing"
    return ", ".join(f"{n} {rc} on {name}"
                     for name, res in sorted(units.items())
                     for rc, n in sorted(res.items()))
