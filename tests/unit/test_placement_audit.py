"""doctor's Placement comparison as a pure function: a provider tree and
the ledger's records against what Placement was observed to hold.  (The
reads themselves, and the repair, run against a real Placement in
tests/functional/placement_service/test_placement_doctor.py.)"""

import dataclasses
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pci_passthrough.doctor.placement_audit import (
    Observed,
    ObservedProvider,
    audit,
)
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.names_taken import NameTaken
from pci_passthrough.placement.tree import PciProvider, ProviderTree

NODE = "cmp1"
X710 = PciProvider(
    name="cmp1_0000:3B:00.0_pcipt", pf_address="0000:3b:00.0",
    resource_class="CUSTOM_PCI_8086_154C",
    traits=frozenset({names.OWNER_TRAIT, "CUSTOM_PHYSNET_PHYSNET1"}),
    vfs=("0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"),
    former_name="cmp1_0000:3B:00.0")
CX6 = PciProvider(
    name="cmp1_0000:5E:00.0_pcipt", pf_address="0000:5e:00.0",
    resource_class="CUSTOM_PCI_15B3_101E",
    traits=frozenset({names.OWNER_TRAIT}),
    vfs=("0000:5e:00.2", "0000:5e:00.3", "0000:5e:00.4"),
    former_name="cmp1_0000:5E:00.0")
TREE = ProviderTree(NODE, (X710, CX6))
ONE = "11111111-1111-4111-8111-111111111111"
TWO = "22222222-2222-4222-8222-222222222222"


def record(instance: str, address: str, port: int = 0,
           state: str = "plugged") -> LedgerRecord:
    return LedgerRecord(instance_uuid=instance, port_index=port,
                        address=address, state=state, flavor="net1",
                        request="{}", netdev=None)


def synced(tree: ProviderTree, records: list[LedgerRecord],
           **extra: dict[str, dict[str, int]]) -> Observed:
    """What Placement holds after a sync of ``tree`` and ``records``
    (the test's own account of it); ``extra`` adds allocations by
    provider name."""
    where = tree.provider_of()
    providers = {}
    for p in tree.providers:
        allocs: dict[str, dict[str, int]] = {}
        for rec in records:
            if where.get(rec.address) is p and rec.state != "outgoing":
                held = allocs.setdefault(rec.instance_uuid, {})
                held[p.resource_class] = held.get(p.resource_class, 0) + 1
        allocs.update(extra.get(p.name, {}))
        providers[p.name] = ObservedProvider(
            p.name, str(uuid.uuid4()), p.inventory(), p.traits, allocs)
    return Observed(tree.nodename, str(uuid.uuid4()), providers, {})


def replaced(observed: Observed, name: str, **changes: object) -> Observed:
    providers = dict(observed.providers)
    providers[name] = dataclasses.replace(providers[name], **changes)
    return dataclasses.replace(observed, providers=providers)


def kinds(findings) -> list[tuple[str, str, bool]]:
    return [(f.kind.value, f.subject, f.fixable) for f in findings]


RECORDS = [record(ONE, "0000:3b:02.0"), record(ONE, "0000:3b:02.1", 1),
           record(TWO, "0000:5e:00.2")]


def test_a_synced_host_has_no_findings() -> None:
    assert audit(TREE, RECORDS, synced(TREE, RECORDS)) == []


def test_no_root_provider_is_left_to_nova_compute_and_so_are_pfs() -> None:
    found = audit(TREE, RECORDS, Observed(NODE, None, {}, {}))
    assert kinds(found) == [
        ("placement-provider", "provider cmp1", False),
        ("placement-provider", f"provider {X710.name}", False),
        ("placement-provider", f"provider {CX6.name}", False)]
    assert "start nova-compute" in found[0].repair
    assert "4 VF(s) are not offered" in found[1].problem


def test_a_name_held_in_another_tree_is_its_own_finding() -> None:
    observed = synced(TREE, RECORDS)
    providers = {CX6.name: observed.providers[CX6.name]}
    holder = NameTaken(X710.name, str(uuid.uuid4()), str(uuid.uuid4()),
                       None)
    stranger = NameTaken("cmp1_0000:AF:00.0", str(uuid.uuid4()),
                         str(uuid.uuid4()), None)
    found = audit(TREE, RECORDS, dataclasses.replace(
        observed, providers=providers,
        elsewhere={X710.name: holder, stranger.name: stranger}))
    # Not "missing, fixable": sync cannot create it; nor are the units
    # of instance ONE, which it cannot write, a finding of their own.
    assert kinds(found) == [
        ("placement-name-taken", f"provider {X710.name}", False)]
    assert holder.uuid in found[0].problem
    assert f"openstack resource provider delete {holder.uuid}" in \
        found[0].repair
    # A name held elsewhere while the tree has its own is no finding.
    assert audit(TREE, RECORDS, dataclasses.replace(
        observed, elsewhere={X710.name: holder})) == []


def test_inventory_and_trait_drift_name_the_field_and_the_traits() -> None:
    observed = synced(TREE, RECORDS)
    inventory = X710.inventory()
    inventory[X710.resource_class] = dict(
        inventory[X710.resource_class], total=2, reserved=1)
    observed = replaced(observed, X710.name, inventories=inventory,
                        traits=(X710.traits - {"CUSTOM_PHYSNET_PHYSNET1"})
                        | {"CUSTOM_OPERATOR_ADDED"})
    (finding,) = audit(TREE, RECORDS, observed)
    assert finding.kind is FindingKind.PLACEMENT_PROVIDER
    assert finding.subject == f"provider {X710.name}" and finding.fixable
    for text in ("CUSTOM_PCI_8086_154C total 2, the host says 4",
                 "reserved 1, the host says 0",
                 "traits missing: CUSTOM_PHYSNET_PHYSNET1",
                 "traits the host does not report: CUSTOM_OPERATOR_ADDED"):
        assert text in finding.problem


def test_an_inventory_of_another_class_is_drift() -> None:
    observed = replaced(synced(TREE, RECORDS), CX6.name, inventories={
        "CUSTOM_OTHER": {"total": 3, "reserved": 0}})
    (finding,) = audit(TREE, RECORDS, observed)
    assert "inventory of CUSTOM_OTHER" in finding.problem
    assert "no inventory of CUSTOM_PCI_15B3_101E (the host has 3)" in \
        finding.problem


def test_a_provider_no_device_is_counted_on() -> None:
    gone = ObservedProvider(
        "cmp1_0000:AF:00.0", str(uuid.uuid4()),
        {"CUSTOM_PCI_8086_1889": {"total": 2, "reserved": 0}},
        frozenset({names.OWNER_TRAIT}), {})
    observed = synced(TREE, RECORDS)
    observed.providers[gone.name] = gone
    (unused,) = audit(TREE, RECORDS, observed)
    assert (unused.subject, unused.fixable) == (
        f"provider {gone.name}", True)
    assert unused.repair.startswith("delete it")
    # Still used: reserved by the repair, then left to the operator.
    held = dataclasses.replace(gone, allocations={
        TWO: {"CUSTOM_PCI_8086_1889": 1}})
    observed.providers[gone.name] = held
    found = audit(TREE, RECORDS, observed)
    assert kinds(found)[0] == ("placement-provider",
                               f"provider {gone.name}", True)
    assert "still offers inventory" in found[0].problem
    observed.providers[gone.name] = dataclasses.replace(
        held, inventories={"CUSTOM_PCI_8086_1889": {"total": 2,
                                                    "reserved": 2}})
    found = audit(TREE, RECORDS, observed)
    assert kinds(found)[0] == ("placement-provider",
                               f"provider {gone.name}", False)
    # Its unit is one more than the ledger's for TWO: rewritten.
    assert kinds(found)[1:] == [
        ("placement-allocation", f"instance {TWO}", True)]


def under_former_name(observed: Observed, provider: PciProvider) -> Observed:
    """``observed`` with ``provider`` as earlier releases reported it:
    under its former name, with Nova's trait."""
    providers = dict(observed.providers)
    rp = providers.pop(provider.name)
    providers[str(provider.former_name)] = dataclasses.replace(
        rp, name=provider.former_name,
        traits=rp.traits | {names.NOVA_PCI_TRAIT})
    return dataclasses.replace(observed, providers=providers)


def test_a_provider_under_its_former_name_is_one_fixable_finding() -> None:
    observed = under_former_name(synced(TREE, RECORDS), X710)
    # Its units are the renamed provider's: no allocation finding.
    (finding,) = audit(TREE, RECORDS, observed)
    assert kinds([finding]) == [
        ("placement-provider", f"provider {X710.former_name}", True)]
    assert names.NOVA_PCI_TRAIT in finding.problem
    assert f"rename it {X710.name}" in finding.repair
    # Units there the ledger does not hold are still named.
    observed.providers[str(X710.former_name)].allocations[TWO] = {
        X710.resource_class: 1}
    assert kinds(audit(TREE, RECORDS, observed))[1:] == [
        ("placement-allocation", f"instance {TWO}", True)]


def test_a_former_name_of_another_class_is_retired_not_renamed() -> None:
    observed = under_former_name(synced(TREE, RECORDS), CX6)
    former = str(CX6.former_name)
    observed.providers[former] = dataclasses.replace(
        observed.providers[former],
        inventories={"CUSTOM_OLD": {"total": 3, "reserved": 0}},
        allocations={TWO: {"CUSTOM_OLD": 1}})
    found = kinds(audit(TREE, RECORDS, observed))
    assert ("placement-provider", f"provider {CX6.name}", True) in found
    assert ("placement-provider", f"provider {former}", True) in found
    problems = {f.subject: f.problem
                for f in audit(TREE, RECORDS, observed)}
    assert "still offers inventory" in problems[f"provider {former}"]


def test_a_former_name_not_ours_is_novas_own_provider() -> None:
    observed = synced(TREE, RECORDS)
    # Nova's provider of that name, beside ours: none of our business.
    observed.providers[str(X710.former_name)] = ObservedProvider(
        str(X710.former_name), str(uuid.uuid4()), {"CUSTOM_GPU": {
            "total": 1}}, frozenset({names.NOVA_PCI_TRAIT, "OWNER_NOVA"}),
        {TWO: {"CUSTOM_GPU": 1}})
    assert audit(TREE, RECORDS, observed) == []


def test_a_stale_provider_of_ours_keeps_no_nova_trait() -> None:
    gone = ObservedProvider(
        "cmp1_0000:AF:00.0", str(uuid.uuid4()),
        {"CUSTOM_PCI_8086_1889": {"total": 2, "reserved": 2}},
        frozenset({names.OWNER_TRAIT, names.NOVA_PCI_TRAIT}),
        {TWO: {"CUSTOM_PCI_8086_1889": 1}})
    observed = synced(TREE, RECORDS)
    observed.providers[gone.name] = gone
    found = audit(TREE, RECORDS, observed)
    assert kinds(found)[0] == ("placement-provider",
                               f"provider {gone.name}", True)
    assert f"carries Nova's trait {names.NOVA_PCI_TRAIT}" in \
        found[0].problem
    assert found[0].repair.startswith("remove that trait")


def test_a_provider_not_ours_without_our_devices_is_left_alone() -> None:
    observed = synced(TREE, RECORDS)
    observed.providers["cmp1_GPU"] = ObservedProvider(
        "cmp1_GPU", str(uuid.uuid4()), {"VGPU": {"total": 4}},
        frozenset({"CUSTOM_SOMEONE_ELSE"}), {TWO: {"VGPU": 1}})
    assert audit(TREE, RECORDS, observed) == []


def test_an_instance_whose_units_differ_from_the_ledger() -> None:
    observed = synced(TREE, [RECORDS[0], RECORDS[2]])
    (finding,) = audit(TREE, RECORDS, observed)
    assert finding.kind is FindingKind.PLACEMENT_ALLOCATION
    assert finding.subject == f"instance {ONE}" and finding.fixable
    assert finding.problem == (
        f"Placement holds 1 CUSTOM_PCI_8086_154C on {X710.name} on this "
        f"host's providers, the ledger 2 CUSTOM_PCI_8086_154C on "
        f"{X710.name}")
    (missing,) = audit(TREE, RECORDS, synced(TREE, RECORDS[:2]))
    assert missing.subject == f"instance {TWO}"
    assert missing.problem.startswith("Placement holds nothing")


def test_a_consumer_no_claim_explains_is_reported_not_fixable() -> None:
    stranger = str(uuid.uuid4())
    observed = synced(TREE, RECORDS, **{
        CX6.name: {stranger: {CX6.resource_class: 1}}})
    (finding,) = audit(TREE, RECORDS, observed)
    assert kinds([finding]) == [
        ("placement-consumer", f"consumer {stranger}", False)]
    assert "not claimed yet" in finding.problem
    assert f"allocation delete {stranger}" in finding.repair


def test_an_outgoing_instance_and_its_migration_consumer_are_expected(
        ) -> None:
    migration = str(uuid.uuid4())
    leaving = [record(ONE, "0000:3b:02.0", state="outgoing")]
    # Nova moved the source's units to the migration's consumer.
    observed = synced(TREE, leaving, **{
        X710.name: {migration: {X710.resource_class: 1}}})
    observed = dataclasses.replace(
        observed, consumer_types={migration: "MIGRATION"})
    assert audit(TREE, leaving, observed) == []
    # The instance still holding them itself is fine too.
    observed = synced(TREE, leaving, **{
        X710.name: {ONE: {X710.resource_class: 1}}})
    assert audit(TREE, leaving, observed) == []
    # A migration's units with no migration away recorded: leaked.
    stale = dataclasses.replace(
        synced(TREE, [], **{
            X710.name: {migration: {X710.resource_class: 1}}}),
        consumer_types={migration: "MIGRATION"})
    (finding,) = audit(TREE, [], stale)
    assert finding.subject == f"consumer {migration}"
    assert "a migration's allocation" in finding.problem


def test_an_instance_holding_a_vanished_device_is_not_compared() -> None:
    records = [record(TWO, "0000:5e:00.2"),
               record(TWO, "0000:af:02.0", 1)]
    observed = synced(TREE, records[:1])
    assert audit(TREE, records, observed) == []


# -- properties ---------------------------------------------------------------

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "100"))
BOUNDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
VFS = X710.vfs + CX6.vfs
INSTANCES = [str(uuid.UUID(int=i + 1, version=4)) for i in range(4)]
STATES = ["claimed", "plugged", "incoming", "outgoing"]


@st.composite
def ledgers(draw: st.DrawFn) -> list[LedgerRecord]:
    held = draw(st.lists(st.sampled_from(VFS), unique=True, max_size=7))
    records = []
    ports: dict[str, int] = {}
    state_of: dict[str, str] = {}
    for address in held:
        inst = draw(st.sampled_from(INSTANCES))
        state = state_of.setdefault(inst, draw(st.sampled_from(STATES)))
        port = ports.get(inst, 0)
        ports[inst] = port + 1
        records.append(record(inst, address, port, state))
    return records


@BOUNDED
@given(ledgers())
def test_any_ledger_synced_has_no_findings(records) -> None:
    assert audit(TREE, records, synced(TREE, records)) == []


@BOUNDED
@given(ledgers(), st.sampled_from([X710, CX6]), st.sampled_from(INSTANCES),
       st.integers(min_value=-2, max_value=3))
def test_any_unit_count_changed_is_one_finding_on_that_consumer(
        records, provider, instance, delta) -> None:
    observed = synced(TREE, records)
    rp = observed.providers[provider.name]
    allocs = {c: dict(r) for c, r in rp.allocations.items()}
    held = allocs.get(instance, {}).get(provider.resource_class, 0)
    count = max(0, held + delta)
    allocs.setdefault(instance, {})[provider.resource_class] = count
    changed = replaced(observed, provider.name, allocations=allocs)
    found = audit(TREE, records, changed)
    states = {r.state for r in records if r.instance_uuid == instance}
    if count == held or "outgoing" in states:
        assert found == []
    elif states:
        assert kinds(found) == [
            ("placement-allocation", f"instance {instance}", True)]
    else:
        assert kinds(found) == [
            ("placement-consumer", f"consumer {instance}", False)]


@pytest.mark.parametrize("field", ["total", "reserved", "max_unit",
                                   "min_unit", "step_size",
                                   "allocation_ratio"])
def test_each_inventory_field_is_compared(field) -> None:
    inventory = CX6.inventory()
    inventory[CX6.resource_class] = dict(
        inventory[CX6.resource_class], **{field: 9})
    observed = replaced(synced(TREE, []), CX6.name,
                        inventories=inventory)
    (finding,) = audit(TREE, [], observed)
    assert f"CUSTOM_PCI_15B3_101E {field} 9, the host says" in \
        finding.problem
