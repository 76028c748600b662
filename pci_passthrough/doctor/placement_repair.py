"""doctor --fix for Placement: one placement sync repairs every fixable
Placement finding; a second audit tells which it did."""

import dataclasses
from collections.abc import Collection, Sequence

from pci_passthrough import exception
from pci_passthrough.doctor.placement_audit import audit, observe
from pci_passthrough.doctor.report import Finding
from pci_passthrough.ledger import LedgerRecord, RecordSource
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.sync import Reporter
from pci_passthrough.placement.tree import ProviderTree


@dataclasses.dataclass(frozen=True, slots=True)
class PlacementRepair:
    findings: tuple[Finding, ...]
    #: The providers' UUIDs by name, when the sync ran.
    provider_uuids: dict[str, str] | None


def repair(client: PlacementClient, tree: ProviderTree,
           records: Sequence[LedgerRecord], findings: Sequence[Finding],
           *, traits: Collection[str] = (),
           classes: Collection[str] = (),
           ledger: RecordSource | None = None) -> PlacementRepair:
    """Sync when any finding is fixable, then audit again, with the
    ledger as the host's own repairs left it: a finding gone is fixed,
    one still there is left with what differs now, and one the host's
    repairs brought about (a consumer whose expired lease was freed
    here) is added.  A Placement failure part-way leaves every finding
    not confirmed fixed, saying why (each of sync's writes is whole:
    nothing is left half-written).

    :param traits: further traits to create (the flavors' requests').
    :param classes: further custom classes to create.
    :param ledger: reads the ledger afresh: the sync writes only what
        it holds at the moment of each write (an instance freed since
        ``records`` were read is never written back).
    """
    known = {r.instance_uuid for r in records}
    uuids = None
    try:
        if any(f.fixable for f in findings):
            uuids = Reporter(client).sync(
                tree, records, traits, classes,
                create_root=False, ledger=ledger).provider_uuids
        after = audit(tree, records, observe(
            client, tree.nodename, known,
            names=[p.name for p in tree.providers]))
    except exception.PciPassthroughError as exc:
        why = f"placement sync failed: {exc}"
        return PlacementRepair(tuple(
            dataclasses.replace(f, left=why) if f.fixable else f.unsafe()
            for f in findings), None)
    still = {(f.kind, f.subject): f for f in after}
    result = []
    for finding in findings:
        now = still.pop((finding.kind, finding.subject), None)
        if not finding.fixable:
            result.append((now or finding).unsafe())
        elif now is None:
            result.append(dataclasses.replace(finding, fixed=True))
        else:
            result.append(dataclasses.replace(
                finding, left=f"still differs after placement sync: "
                              f"{now.problem}"))
    for new in still.values():
        result.append(new.unsafe() if not new.fixable else
                      dataclasses.replace(
                          new, left="appeared after the repairs: run "
                                    "doctor --fix again"))
    return PlacementRepair(tuple(result), uuids)
