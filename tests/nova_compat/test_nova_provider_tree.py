"""update_provider_tree against nova's real ProviderTree (tox -e
nova-compat installs nova; elsewhere these tests skip)."""

import uuid

import pytest

from pci_passthrough.config import devspec
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.provider_tree import update_provider_tree
from pci_passthrough.placement.tree import build_tree

provider_tree_mod = pytest.importorskip("nova.compute.provider_tree")
nova_exception = pytest.importorskip("nova.exception")

ROOT = "cmp1"


def host_tree(tmp_path, layout=demo_hosts.DEMO_HOST_A):
    root = tmp_path / "sys"
    st.build_tree(root, layout)
    specs = devspec.parse_device_specs(demo_hosts.DEMO_DEVICE_SPECS)
    return build_tree(ROOT, sysfs_scan.scan(str(root)).devices, specs,
                      ("group",))


def nova_tree():
    pt = provider_tree_mod.ProviderTree()
    root = pt.new_root(ROOT, str(uuid.uuid4()))
    pt.update_inventory(ROOT, {"VCPU": {"total": 8}})
    pt.update_traits(ROOT, ["HW_CPU_X86_AVX2"])
    return pt, root


def test_children_inventories_and_traits(tmp_path) -> None:
    pt, root = nova_tree()
    tree = host_tree(tmp_path)
    update = update_provider_tree(pt, ROOT, tree)
    assert sorted(update.created) == [p.name for p in tree.providers]
    for p in tree.providers:
        data = pt.data(p.name)
        assert data.parent_uuid == root
        assert data.inventory == p.inventory()
        assert set(data.traits) == p.traits
    # The root is nova-compute's: untouched.
    assert set(pt.data(ROOT).inventory) == {"VCPU"}
    assert set(pt.data(ROOT).traits) == {"HW_CPU_X86_AVX2"}
    # A second call changes nothing nova would flush.
    before = {u: pt.data(u) for u in pt.get_provider_uuids(ROOT)}
    again = update_provider_tree(pt, ROOT, tree)
    assert again.created == ()
    assert {u: pt.data(u) for u in pt.get_provider_uuids(ROOT)} == before


def test_stale_provider_kept_reserved_then_removed(tmp_path) -> None:
    pt, _ = nova_tree()
    update_provider_tree(pt, ROOT, host_tree(tmp_path))
    gone = f"{ROOT}_0000:5E:00.0_pcipt"
    gone_uuid = pt.data(gone).uuid
    smaller = host_tree(tmp_path / "b", st.HostLayout(
        (demo_hosts.DEMO_HOST_A.pfs[0],)))
    update = update_provider_tree(pt, ROOT, smaller)
    assert update.kept_reserved == (gone,)
    inv = pt.data(gone).inventory["CUSTOM_PCI_15B3_101E"]
    assert inv["reserved"] == inv["total"]
    consumer = str(uuid.uuid4())
    allocations = {consumer: {"allocations": {gone_uuid: {
        "resources": {"CUSTOM_PCI_15B3_101E": 1}}}}}
    assert update_provider_tree(pt, ROOT, smaller,
                                allocations=allocations).kept_reserved \
        == (gone,)
    update = update_provider_tree(pt, ROOT, smaller, allocations={})
    assert update.removed == (gone,)
    assert not pt.exists(gone)


def test_allocations_healed_from_the_ledger(tmp_path) -> None:
    pt, root = nova_tree()
    tree = host_tree(tmp_path)
    update_provider_tree(pt, ROOT, tree)
    x710 = pt.data(f"{ROOT}_0000:3B:00.0_pcipt").uuid
    one, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    records = [LedgerRecord(one, i, f"0000:3b:02.{i}", "allocated", "net1",
                            "{}", None) for i in range(2)]
    records.append(LedgerRecord(unknown, 0, "0000:3b:02.2", "claimed",
                                "net1", "{}", None))
    allocations = {one: {"allocations": {
        root: {"resources": {"VCPU": 2}},
        x710: {"resources": {"CUSTOM_PCI_8086_154C": 1}}},
        "project_id": "p", "user_id": "u", "consumer_generation": 3}}
    update = update_provider_tree(pt, ROOT, tree, records, allocations)
    assert update.healed == (one,)
    assert allocations[one]["allocations"] == {
        root: {"resources": {"VCPU": 2}},
        x710: {"resources": {"CUSTOM_PCI_8086_154C": 2}}}
    # Consumers Placement does not have are left to heal_allocations.
    assert unknown not in allocations
    assert names.OWNER_TRAIT in pt.data(x710).traits


def test_an_instance_migrating_away_is_not_healed_here(tmp_path) -> None:
    """Nova moved the source's units to the migration's consumer and the
    instance's to the destination: the source heals neither."""
    pt, _ = nova_tree()
    tree = host_tree(tmp_path)
    update_provider_tree(pt, ROOT, tree)
    x710 = pt.data(f"{ROOT}_0000:3B:00.0_pcipt").uuid
    instance, migration, dest = (str(uuid.uuid4()) for _ in range(3))
    records = [LedgerRecord(instance, 0, "0000:3b:02.0", "outgoing",
                            "net1", "{}", None)]
    allocations = {
        instance: {"allocations": {
            dest: {"resources": {"CUSTOM_PCI_8086_154C": 1}}},
            "consumer_generation": 2},
        migration: {"allocations": {
            x710: {"resources": {"CUSTOM_PCI_8086_154C": 1}}},
            "consumer_generation": 1}}
    before = {c: dict(a["allocations"]) for c, a in allocations.items()}
    update = update_provider_tree(pt, ROOT, tree, records, allocations)
    assert update.healed == ()
    assert {c: a["allocations"] for c, a in allocations.items()} == before


def former_providers(pt, tree):
    """Each provider as an earlier release put it in nova's tree: under
    its former name, with Nova's trait."""
    for p in tree.providers:
        pt.new_child(p.former_name, ROOT)
        pt.update_inventory(p.former_name, p.inventory())
        pt.update_traits(p.former_name, p.traits | {names.NOVA_PCI_TRAIT})
    return {p.name: pt.data(p.former_name).uuid for p in tree.providers}


def test_former_names_renamed_through_a_reshape(tmp_path) -> None:
    """As the resource tracker drives it at start: the first call, with
    no allocations, asks for a reshape, leaving nothing nova would take
    for its own PCI providers; the second moves every unit."""
    from nova.compute import pci_placement_translator as translator
    pt, root = nova_tree()
    tree = host_tree(tmp_path)
    former = former_providers(pt, tree)
    x710 = tree.providers[0]
    with pytest.raises(nova_exception.PlacementPciException):
        translator.ensure_tracking_was_not_enabled_before(pt)
    update = update_provider_tree(pt, ROOT, tree)
    assert update.reshape_needed == tuple(sorted(
        p.former_name for p in tree.providers))
    translator.ensure_tracking_was_not_enabled_before(pt)
    consumer = str(uuid.uuid4())
    allocations = {consumer: {"allocations": {
        root: {"resources": {"VCPU": 1}},
        former[x710.name]: {"resources": {x710.resource_class: 2}}},
        "project_id": "p", "user_id": "u", "consumer_generation": 1}}
    update = update_provider_tree(pt, ROOT, tree, (), allocations)
    assert update.renamed == tuple(sorted(
        (p.former_name, p.name) for p in tree.providers))
    assert allocations[consumer]["allocations"] == {
        root: {"resources": {"VCPU": 1}},
        pt.data(x710.name).uuid: {"resources": {x710.resource_class: 2}}}
    assert {pt.data(u).name for u in pt.get_provider_uuids(ROOT)} == {
        ROOT, *(p.name for p in tree.providers)}
    translator.ensure_tracking_was_not_enabled_before(pt)


def test_host_agent_drives_novas_tree_and_claims_what_it_allocates(
        tmp_path) -> None:
    """HostAgent.update_provider_tree as the virt driver calls it: the
    PF providers appear in nova's tree, their UUIDs are what a later
    claim(allocation=) reads, and the ledger heals the allocations."""
    import libvirt

    from pci_passthrough import HostAgent, PortRequest, exception
    from pci_passthrough.fixtures.simulated_host import simulated_host
    from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

    conf, _ = simulated_host(tmp_path / "host", demo_hosts.DEMO_HOST_A,
                             device_specs=demo_hosts.DEMO_DEVICE_SPECS,
                             flavors=demo_hosts.DEMO_FLAVORS)
    conn = libvirt.open(conf.pci_passthrough.libvirt_uri)
    agent = HostAgent(conf, network_driver=LibvirtMacvtapDriver(
        conf, connection=conn))
    try:
        agent.start()
        pt, root = nova_tree()
        update = agent.update_provider_tree(pt, ROOT)
        tree = agent.provider_tree(ROOT)
        assert sorted(update.created) == [p.name for p in tree.providers]
        for p in tree.providers:
            assert pt.data(p.name).inventory == p.inventory()
            assert set(pt.data(p.name).traits) == p.traits
        assert set(pt.data(ROOT).inventory) == {"VCPU"}
        # The scheduler allocated grp1's port on the grouped PF.
        grouped = tree.by_name()[f"{ROOT}_0000:5E:00.0_pcipt"]
        rp = pt.data(grouped.name).uuid
        inst = str(uuid.uuid4())
        port = [PortRequest(0, flavor="grp1", needs_netdev=False)]
        x710 = pt.data(f"{ROOT}_0000:3B:00.0_pcipt").uuid
        with pytest.raises(exception.AllocationMismatch, match=inst):
            agent.claim(inst, port, allocation={0: x710})
        (alloc,) = agent.claim(inst, port, allocation={0: rp})
        assert alloc.address in grouped.vfs
        # Nova passes every consumer's allocations at start: healed.
        allocations = {inst: {"allocations": {
            root: {"resources": {"VCPU": 1}}}}}
        update = agent.update_provider_tree(pt, ROOT, allocations)
        assert update.healed == (inst,)
        assert allocations[inst]["allocations"][rp] == {
            "resources": {grouped.resource_class: 1}}
        assert allocations[inst]["allocations"][root] == {
            "resources": {"VCPU": 1}}
    finally:
        agent.close()
        conn.close()

