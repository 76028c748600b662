"""Bring Placement in line with a host's provider tree and ledger.

Compare before write: every write is preceded by a read and skipped when
nothing differs, because Placement bumps generations even on identical
inventory and allocation writes, and a second sync with nothing changed
must change nothing.  A 409 generation conflict re-reads and retries, a
bounded number of times.  The root provider's own inventories and traits
belong to nova-compute and are never touched.

A provider whose name another tree holds is reported (NameTaken) and
skipped; every other provider is still made right.  Healing allocations
re-reads the ledger before each write (see ._heal).

A provider of ours under its former name (PciProvider.former_name) is
renamed in place (PUT /resource_providers/{uuid}): its UUID, inventory
and allocations stay as they are, no consumer is rewritten, and the
traits written next drop Nova's NOVA_PCI_TRAIT.  Where the new name is
taken already, the former provider is retired instead: the ledger's
units move off it by the heal, and it is deleted once unused.
"""

import dataclasses
import urllib.parse
from collections.abc import Callable, Collection, Sequence
from typing import Any

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.ledger import LedgerRecord, RecordSource
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement._heal import (
    CONSUMER_TYPE,
    HEAL_BATCH,
    INCOMPLETE_CONSUMER_ID,
    Healer,
)
from pci_passthrough.placement.client import PlacementClient, Response
from pci_passthrough.placement.names_taken import NameTaken, name_holder
from pci_passthrough.placement.tree import (
    PciProvider,
    ProviderTree,
    inventory_differs,
)

__all__ = ["CONSUMER_TYPE", "HEAL_BATCH", "INCOMPLETE_CONSUMER_ID",
           "Reporter", "SyncReport"]

LOG = logging.getLogger(__name__)

MAX_ATTEMPTS = 4


@dataclasses.dataclass(slots=True)
class SyncReport:
    """What one sync found and did."""

    root_uuid: str = ""
    #: The UUID of each provider of the tree, by name (what
    #: HostAgent.use_placement_providers takes).
    provider_uuids: dict[str, str] = dataclasses.field(default_factory=dict)
    created_classes: list[str] = dataclasses.field(default_factory=list)
    created_traits: list[str] = dataclasses.field(default_factory=list)
    created_providers: list[str] = dataclasses.field(default_factory=list)
    #: Former name -> name, of the providers renamed.
    renamed_providers: dict[str, str] = dataclasses.field(
        default_factory=dict)
    updated_inventories: list[str] = dataclasses.field(
        default_factory=list)
    updated_traits: list[str] = dataclasses.field(default_factory=list)
    deleted_providers: list[str] = dataclasses.field(default_factory=list)
    #: Providers no longer in the tree that still hold allocations: kept,
    #: all of their inventory reserved.
    kept_in_use: list[str] = dataclasses.field(default_factory=list)
    healed_consumers: list[str] = dataclasses.field(default_factory=list)
    #: Consumers to heal that the ledger no longer held when re-read
    #: before the write (freed while the sync ran): not written.
    released_meanwhile: list[str] = dataclasses.field(
        default_factory=list)
    #: Providers of the tree whose name another tree holds: not
    #: created, nor their consumers healed.
    names_taken: list[NameTaken] = dataclasses.field(default_factory=list)
    #: Ledger records whose device is not in the tree (vanished).
    unmapped: list[str] = dataclasses.field(default_factory=list)
    #: Consumers with units on our providers the ledger does not know.
    unknown_consumers: list[str] = dataclasses.field(default_factory=list)
    conflicts_retried: int = 0
    writes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def changed(self) -> bool:
        return self.writes > 0

    def problems(self) -> list[str]:
        """What the sync could not do, one line each: exit non-zero."""
        return [taken.line() for taken in self.names_taken]


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Reporter:
    """Reports one host's tree to Placement.

    :param client: the Placement client.
    :param max_attempts: tries of a write that meets 409 conflicts.
    """

    def __init__(self, client: PlacementClient,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.client = client
        self.max_attempts = max_attempts
        # Names known to exist: Placement never deletes a custom trait or
        # class in use, so a periodic sync need not list them again (as
        # nova's report client caches the traits it ensured).
        self._traits: set[str] = set()
        self._classes: set[str] = set()

    # -- the whole sync ----------------------------------------------------

    def sync(self, tree: ProviderTree, records: Sequence[LedgerRecord],
             traits: Collection[str] = (),
             classes: Collection[str] = (), *,
             create_root: bool = True,
             ledger: RecordSource | None = None) -> SyncReport:
        """Create, update and remove providers, and heal allocations.

        A provider whose name another tree holds is not created: it is
        listed in ``names_taken`` (SyncReport.problems), and the others
        are made right all the same.

        :param traits: further traits to create (those the configured
            flavors' requests may name).
        :param classes: further custom classes to create.
        :param create_root: create the root provider when missing; on a
            nova-compute host pass False: nova-compute creates it with
            the compute node's UUID and cannot start when a provider of
            that name has another.
        :param ledger: reads the ledger afresh; healing calls it before
            each write, so that an instance freed while the sync runs is
            not written back.  Without it ``records`` are taken as
            current, which only a caller holding the ledger still may.
        :raises PlacementRootMissing: no root and not ``create_root``.
        """
        report = SyncReport()
        root = self.ensure_root(tree.nodename, report, create_root)
        report.root_uuid = root
        self.ensure_classes({*tree.resource_classes, *classes}, report)
        self.ensure_traits({*tree.traits, *traits}, report)
        ours = self.our_providers(root)
        # By name among the whole tree: a provider created by a sync that
        # died before it set the owner trait is found and completed.
        in_tree = self.tree_providers(root)
        uuids: dict[str, str] = {}
        for provider in tree.providers:
            existing = in_tree.get(provider.name)
            former = ours.get(provider.former_name or "")
            if existing is None and former is not None and \
                    self._rename(former, provider, report):
                existing = ours.pop(str(provider.former_name))
            uuid = self._sync_provider(provider, root, existing, report)
            if uuid is not None:
                uuids[provider.name] = uuid
        wanted = {p.name for p in tree.providers}
        for name, info in sorted(ours.items()):
            if name not in wanted:
                self._retire(name, info["uuid"], report)
        # The retired providers still there hold allocations.
        retired = {str(ours[name]["uuid"]) for name in report.kept_in_use}
        Healer(self.client, self._retry, tree, uuids,
               {*uuids.values(), *retired}, ledger).heal(records, report)
        report.provider_uuids = uuids
        return report

    # -- root, classes, traits ---------------------------------------------

    def ensure_root(self, nodename: str, report: SyncReport,
                    create: bool = True) -> str:
        """The root provider's UUID; created when missing if
        ``create``."""
        found = self.client.get(
            f"/resource_providers?name={_q(nodename)}").body
        if found["resource_providers"]:
            return str(found["resource_providers"][0]["uuid"])
        if not create:
            raise exception.PlacementRootMissing(nodename=nodename)
        resp = self.client.post("/resource_providers", {"name": nodename},
                                expect=(200, 409))
        report.writes += 1
        if resp.status == 409:
            # Created meanwhile (nova-compute starting): take it.
            found = self.client.get(
                f"/resource_providers?name={_q(nodename)}").body
            if not found["resource_providers"]:
                raise exception.PlacementRequestFailed(
                    method="POST", path="/resource_providers", status=409,
                    detail=resp.detail())
            return str(found["resource_providers"][0]["uuid"])
        return str(resp.body["uuid"])

    def ensure_classes(self, wanted: Collection[str],
                       report: SyncReport) -> None:
        custom = {c for c in wanted if c.startswith("CUSTOM_")}
        if custom <= self._classes:
            return
        have = {rc["name"] for rc in self.client.get(
            "/resource_classes").body["resource_classes"]}
        for name in sorted(custom - have):
            self.client.put(f"/resource_classes/{name}", None,
                            expect=(201, 204))
            report.created_classes.append(name)
            report.writes += 1
        self._classes |= have | custom

    def ensure_traits(self, wanted: Collection[str],
                      report: SyncReport) -> None:
        custom = {t for t in wanted if t.startswith("CUSTOM_")}
        if custom <= self._traits:
            return
        have = set(self.client.get(
            "/traits?name=startswith:CUSTOM_").body["traits"])
        for name in sorted(custom - have):
            self.client.put(f"/traits/{name}", None, expect=(201, 204))
            report.created_traits.append(name)
            report.writes += 1
        self._traits |= have | custom

    def tree_providers(self, root: str) -> dict[str, dict[str, Any]]:
        """Every provider of the root's tree, by name."""
        body = self.client.get(f"/resource_providers?in_tree={root}").body
        return {p["name"]: p for p in body["resource_providers"]
                if p["uuid"] != root}

    def our_providers(self, root: str) -> dict[str, dict[str, Any]]:
        """The providers of the root's tree this library reported."""
        body = self.client.get(
            f"/resource_providers?in_tree={root}"
            f"&required={names.OWNER_TRAIT}").body
        return {p["name"]: p for p in body["resource_providers"]
                if p["uuid"] != root}

    # -- providers ---------------------------------------------------------

    def _sync_provider(self, provider: PciProvider, root: str,
                       existing: dict[str, Any] | None,
                       report: SyncReport) -> str | None:
        """The provider made as the host reports it; its UUID, None when
        another tree holds its name (added to ``names_taken``)."""
        if existing is None:
            uuid = self._create(provider.name, root, report)
            if uuid is None:
                return None
        else:
            uuid = str(existing["uuid"])
        if self.set_inventory(uuid, provider.inventory(), report):
            report.updated_inventories.append(provider.name)
        if self.set_traits(uuid, provider.traits, report):
            report.updated_traits.append(provider.name)
        return uuid

    def _create(self, name: str, root: str,
                report: SyncReport) -> str | None:
        """Create provider ``name`` under ``root``: its UUID, or None
        when another tree holds the name."""
        for _ in range(self.max_attempts):
            resp = self.client.post(
                "/resource_providers",
                {"name": name, "parent_provider_uuid": root},
                expect=(200, 409))
            if resp.status != 409:
                report.created_providers.append(name)
                report.writes += 1
                return str(resp.body["uuid"])
            # Names are unique: who holds it?  In the tree (a sync
            # running meanwhile made it), it is ours to complete.
            taken = name_holder(self.client, name, root)
            if taken is not None:
                report.names_taken.append(taken)
                return None
            mine = self.tree_providers(root).get(name)
            if mine is not None:
                return str(mine["uuid"])
            report.conflicts_retried += 1  # deleted meanwhile: again
        raise exception.PlacementConflict(
            method="POST", path="/resource_providers",
            attempts=self.max_attempts, detail=f"provider name {name}")

    def _rename(self, former: dict[str, Any], provider: PciProvider,
                report: SyncReport) -> bool:
        """Give provider ``former`` (as listed) the name of ``provider``;
        False when it holds another class (its units are not the new
        provider's: it is retired instead) or Placement refuses (the
        name is taken, or the provider is gone)."""
        path = f"/resource_providers/{former['uuid']}"
        inventory = self.client.get(f"{path}/inventories",
                                    expect=(200, 404)).body
        if not set(inventory.get("inventories", {})) <= \
                {provider.resource_class}:
            return False
        resp = self.client.put(path, {"name": provider.name},
                               expect=(200, 404, 409))
        if resp.status != 200:
            LOG.warning("Provider %s cannot be renamed %s: %s",
                        former["name"], provider.name, resp.detail())
            return False
        report.renamed_providers[str(former["name"])] = provider.name
        report.writes += 1
        return True

    def _retry(self, what: str, path: str,
               attempt_fn: Callable[[], Response | None],
               report: SyncReport, method: str = "PUT") -> bool:
        """Run ``attempt_fn`` (read, compare, maybe write) until it does
        not meet a 409; True when it wrote."""
        last = ""
        for _ in range(self.max_attempts):
            resp = attempt_fn()
            if resp is None:
                return False
            if resp.status != 409:
                report.writes += 1
                return True
            last = resp.detail()
            if resp.code not in (None, "placement.concurrent_update") and \
                    "generation" not in last:
                raise exception.PlacementRequestFailed(
                    method=method, path=path, status=409, detail=last)
            report.conflicts_retried += 1
            LOG.debug("Conflict on %s %s, retrying: %s", what, path, last)
        raise exception.PlacementConflict(method=method, path=path,
                                          attempts=self.max_attempts,
                                          detail=last)

    def set_inventory(self, uuid: str,
                      inventory: dict[str, dict[str, Any]],
                      report: SyncReport) -> bool:
        path = f"/resource_providers/{uuid}/inventories"

        def attempt() -> Response | None:
            body = self.client.get(path).body
            if not inventory_differs(body["inventories"], inventory):
                return None
            return self.client.put(path, {
                "resource_provider_generation":
                    body["resource_provider_generation"],
                "inventories": inventory}, expect=(200, 409))

        return self._retry("inventory", path, attempt, report)

    def set_traits(self, uuid: str, traits: Collection[str],
                   report: SyncReport) -> bool:
        path = f"/resource_providers/{uuid}/traits"

        def attempt() -> Response | None:
            body = self.client.get(path).body
            if set(body["traits"]) == set(traits):
                return None
            return self.client.put(path, {
                "resource_provider_generation":
                    body["resource_provider_generation"],
                "traits": sorted(traits)}, expect=(200, 409))

        return self._retry("traits", path, attempt, report)

    def _retire(self, name: str, uuid: str, report: SyncReport) -> None:
        """A provider gone from the tree: deleted when unused, else kept
        with all of its inventory reserved (no new allocation lands on
        it) and reported."""
        usages = self.client.get(
            f"/resource_providers/{uuid}/usages").body["usages"]
        if not any(usages.values()):
            resp = self.client.delete(f"/resource_providers/{uuid}",
                                      expect=(204, 404, 409))
            if resp.status != 409:
                report.deleted_providers.append(name)
                report.writes += 1
                return
        path = f"/resource_providers/{uuid}/inventories"
        inventory = self.client.get(path).body["inventories"]
        reserved = {rc: dict(inv, reserved=inv["total"])
                    for rc, inv in inventory.items()}
        self.set_inventory(uuid, reserved, report)
        traits = self.client.get(
            f"/resource_providers/{uuid}/traits").body["traits"]
        self.set_traits(uuid, set(traits) - {names.NOVA_PCI_TRAIT}, report)
        LOG.warning("Provider %s has no device left but still holds "
                    "allocations %s: kept, all reserved", name, usages)
        report.kept_in_use.append(name)
