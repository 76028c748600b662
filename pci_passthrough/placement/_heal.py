"""Healing each instance's units on this host's providers from the
ledger, without bringing back an instance freed while the sync runs.

A release races every heal: the host frees the instance's devices in
the ledger, then Nova deletes its consumer (DELETE /allocations/{c}).
Written from a ledger read before the release, a heal would create that
consumer anew, holding units nobody frees.  So each batch reads the
consumers from Placement first, with their generations, then the ledger
afresh (``reread``), and writes only the consumers that read still
holds, each conditional on the generation read (microversion 1.28: null
means "must not exist yet").

Nova allocates before the host claims and deletes only after the host
released.  A consumer to heal was held when the sync began, so Placement
had it; if Placement no longer has it, it was released, and the fresh
ledger says so.  A consumer released after the ledger's read has been
changed or deleted in Placement since the consumers' read: the write is
refused with a 409, and the retry reads both again.
"""

import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from pci_passthrough.ledger import LedgerRecord, RecordSource
from pci_passthrough.placement.client import PlacementClient, Response
from pci_passthrough.placement.tree import ProviderTree, ledger_units

#: Consumers healed per POST /allocations: one request instead of one
#: per consumer, small enough that a conflict re-reads little.
HEAL_BATCH = 50
#: Placement's own default for consumers whose project and user it does
#: not know ([placement] incomplete_consumer_project_id): a consumer
#: healed from the ledger alone gets these until Nova writes its own.
INCOMPLETE_CONSUMER_ID = "00000000-0000-0000-0000-000000000000"
CONSUMER_TYPE = "INSTANCE"

#: consumer -> provider UUID -> resource class -> units.
Units = dict[str, dict[str, dict[str, int]]]


class HealReport(Protocol):
    """The fields of SyncReport a heal fills in."""

    healed_consumers: list[str]
    released_meanwhile: list[str]
    unmapped: list[str]
    unknown_consumers: list[str]


#: Runs one read-compare-write attempt until it meets no 409; True when
#: it wrote (Reporter._retry).
Retry = Callable[[str, str, Callable[[], Response | None], Any, str], bool]


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def wanted_units(tree: ProviderTree, records: Sequence[LedgerRecord],
                 uuids: Mapping[str, str]) -> Units:
    """What the ledger says each instance holds here, by provider UUID:
    the instances the ledger's to say (not migrating away, no vanished
    device) whose every provider is known (``uuids``; a provider whose
    name another tree holds has none)."""
    out = {}
    for consumer, by_name in ledger_units(tree, records).wanted.items():
        if all(name in uuids for name in by_name):
            out[consumer] = {uuids[name]: res
                             for name, res in by_name.items()}
    return out


class Healer:
    """One sync's heal of allocations.

    :param ours: the provider UUIDs whose units are the ledger's to say.
    :param reread: reads the ledger afresh before each write; None: the
        records given to heal() are taken as current (a caller that
        holds the ledger still).
    """

    def __init__(self, client: PlacementClient, retry: Retry,
                 tree: ProviderTree, uuids: Mapping[str, str],
                 ours: Collection[str],
                 reread: RecordSource | None = None) -> None:
        self.client = client
        self.retry = retry
        self.tree = tree
        self.uuids = dict(uuids)
        self.ours = frozenset(ours)
        self.reread = reread

    def heal(self, records: Sequence[LedgerRecord],
             report: HealReport) -> None:
        """Make each instance's units here the ledger's, keeping the rest
        of its allocations; an instance migrating away is left as it is
        (Nova holds its units here under the migration's consumer)."""
        ledger = ledger_units(self.tree, records)
        report.unmapped = sorted(r.address for r in ledger.unmapped)
        # What each consumer holds on our providers, read per provider:
        # a consumer already right costs no read of its own.
        have: Units = {}
        for uuid in sorted(self.ours):
            allocs = self.client.get(
                f"/resource_providers/{uuid}/allocations").body
            for consumer, alloc in allocs["allocations"].items():
                held = {rc: n for rc, n in alloc["resources"].items() if n}
                if held:
                    have.setdefault(consumer, {})[uuid] = held
        report.unknown_consumers = sorted(set(have) - ledger.known)
        # An instance whose device vanished still holds it: its units
        # are not lowered to what the tree can still see (left_alone).
        wanted = wanted_units(self.tree, records, self.uuids)
        stale = sorted(c for c, want in wanted.items()
                       if have.get(c, {}) != want)
        reread = self.reread or (lambda: records)
        for start in range(0, len(stale), HEAL_BATCH):
            self._batch(stale[start:start + HEAL_BATCH], reread, report)

    def _batch(self, consumers: Sequence[str], reread: RecordSource,
               report: HealReport) -> None:
        """Rewrite several consumers' units in one POST /allocations (all
        or nothing: a conflict re-reads them all)."""
        written: list[str] = []
        released: list[str] = []

        def attempt() -> Response | None:
            # Placement first, then the ledger: see the module's doc.
            read = {c: self.client.get(f"/allocations/{_q(c)}").body
                    for c in consumers}
            fresh = wanted_units(self.tree, reread(), self.uuids)
            released[:] = sorted(c for c in consumers if c not in fresh)
            bodies = {c: body for c, body in (
                (c, self._body(read[c], fresh[c]))
                for c in consumers if c in fresh) if body is not None}
            written[:] = sorted(bodies)
            if not bodies:
                return None
            return self.client.post("/allocations", bodies,
                                    expect=(204, 409))

        wrote = self.retry("allocations", "/allocations", attempt, report,
                           "POST")
        report.released_meanwhile += released
        if wrote:
            report.healed_consumers += written

    def _body(self, current: dict[str, Any],
              units: dict[str, dict[str, int]]) -> dict[str, Any] | None:
        """The consumer's allocations with its units here made ``units``,
        conditional on the generation read; None when nothing differs."""
        have = {rp: dict(a["resources"])
                for rp, a in current["allocations"].items()}
        merged = {rp: res for rp, res in have.items()
                  if rp not in self.ours}
        merged.update(units)
        if merged == have:
            return None
        return {
            "allocations": {rp: {"resources": res}
                            for rp, res in merged.items()},
            "project_id": current.get("project_id",
                                      INCOMPLETE_CONSUMER_ID),
            "user_id": current.get("user_id", INCOMPLETE_CONSUMER_ID),
            # Absent (None) when Placement has no such consumer: the
            # write then creates it only if nobody did meanwhile.
            "consumer_generation": current.get("consumer_generation"),
            "consumer_type": current.get("consumer_type")
            or CONSUMER_TYPE}
