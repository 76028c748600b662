"""The device tracker over real sysfs trees and a real SQLite ledger."""

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import uuid

import pytest
from conf_files import write_host_conf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import CLAIMED, PLUGGED, Ledger
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.tracker import HostTracker

SPECS = (
    '{"vendor_id": "8086", "physical_network": "physnet1"}',
    '{"vendor_id": "15b3", "physical_network": "physnet2", '
    '"group": "grp1"}',
)
FLAVORS = (
    '{"name": "net1", "physical_network": "physnet1"}',
    '{"name": "grp1", "group": "grp1"}',
    '{"name": "intel", "vendor_id": "8086"}',
    '{"name": "pf", "vendor_id": "8086", "device_type": "type-PF"}',
    '{"name": "req", "vendor_id": "8086", "numa_policy": "required"}',
    '{"name": "pref", "vendor_id": "8086", "numa_policy": "preferred"}',
)
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=4, numa_node=0,
                netdev="ens1f0", vf_drivers={3: "vfio-pci"}),
    st.PfLayout("intel-x710", "0000:af:00.0", numvfs=2, numa_node=1,
                netdev="ens5f0"),
    st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=2, numa_node=1,
                netdev="ens2f0np0", switchdev=True),
))


def new_uuid() -> str:
    return str(uuid.uuid4())


class Host:
    """A tree, its scan and a tracker on a ledger, all in tmp_path."""

    def __init__(self, tmp_path, layout=LAYOUT, flavor_values=FLAVORS):
        self.root = tmp_path / "sys"
        self.ledger_path = tmp_path / "claims.db"
        self.tree = st.build_tree(self.root, layout)
        self.specs = devspec.parse_device_specs(SPECS)
        self.flavors = flavors.parse_flavors(
            flavor_values, known_tags=self.specs.tag_names,
            special_attributes=["group"])

    def tracker(self, **ledger_args) -> HostTracker:
        tracker = HostTracker(self.flavors,
                              Ledger(self.ledger_path, **ledger_args))
        tracker.update_devices(sysfs_scan.scan(self.root), self.specs)
        return tracker


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.fixture
def tracker(host):
    t = host.tracker()
    yield t
    t.close()


def held(tracker):
    return {a.address: (a.instance_uuid, a.port_index)
            for a in tracker.allocations()}


def test_claim_gives_a_vf_with_a_netdev_and_records_it(tracker, host):
    inst = new_uuid()
    (alloc,) = tracker.claim(inst, [PortRequest(0, flavor="net1",
                                                mac="52:54:00:00:00:AA",
                                                vlan=100)])
    assert alloc.address.startswith("0000:3b:02.")
    assert alloc.netdev and alloc.state == CLAIMED
    assert (alloc.mac, alloc.vlan) == ("52:54:00:00:00:aa", 100)
    (rec,) = Ledger(host.ledger_path).records()
    assert (rec.instance_uuid, rec.address, rec.state) == (
        inst, alloc.address, CLAIMED)


def test_special_group_devices_go_only_to_flavors_naming_group(tracker):
    taken = [tracker.claim(new_uuid(), [PortRequest(0, flavor="intel")])[0]
             for _ in range(5)]
    assert all(not a.address.startswith("0000:5e") for a in taken)
    with pytest.raises(exception.ClaimFailed):
        tracker.claim(new_uuid(), [PortRequest(0, flavor="intel")])
    grp = tracker.claim(new_uuid(), [PortRequest(0, flavor="grp1")])[0]
    assert grp.address.startswith("0000:5e")


def test_vfio_vf_is_never_given_to_a_macvtap_port(tracker):
    addresses = {tracker.claim(new_uuid(),
                               [PortRequest(0, flavor="intel")])[0].address
                 for _ in range(5)}
    assert "0000:3b:02.3" not in addresses
    # Not backing macvtap, it may be given.
    (alloc,) = tracker.claim(new_uuid(), [PortRequest(
        0, flavor="intel", needs_netdev=False)])
    assert alloc.address == "0000:3b:02.3"


def test_claim_is_all_or_nothing_and_names_the_failing_port(tracker, host):
    inst = new_uuid()
    before = Ledger(host.ledger_path).records()
    with pytest.raises(exception.ClaimFailed) as err:
        tracker.claim(inst, [PortRequest(0, flavor="grp1"),
                             PortRequest(1, flavor="grp1"),
                             PortRequest(2, flavor="grp1")])
    message = str(err.value)
    assert f"instance {inst} port 2 (flavor grp1)" in message
    assert "taken by an earlier port of this request (2 devices)" in message
    assert tracker.allocations() == []
    assert Ledger(host.ledger_path).records() == before


def test_pf_and_vf_exclude_each_other(host):
    tracker = host.tracker()
    inst = new_uuid()
    tracker.claim(inst, [PortRequest(0, flavor="intel")])
    vf_parent = tracker.allocations(inst)[0].parent_addr
    pf = tracker.claim(new_uuid(), [PortRequest(0, flavor="pf",
                                                needs_netdev=False)])[0]
    assert pf.address != vf_parent
    why = {d.address: d.reason for d in tracker.explain(
        "pf", needs_netdev=False).devices}
    assert why[vf_parent] == "unavailable: 1 of its VFs are in use"
    # The other PF is held: its VFs are unavailable.
    vf_of_pf = "0000:af:02.0"
    assert why[vf_of_pf].startswith("a PF") is False
    assert {d.address: d.reason for d in tracker.explain(
        "intel").devices}[vf_of_pf] == (
        f"unavailable: its PF {pf.address} is in use by instance "
        f"{pf.instance_uuid}")
    tracker.free(inst)
    again = tracker.claim(new_uuid(), [PortRequest(0, flavor="pf",
                                                   needs_netdev=False)])
    assert again[0].address == vf_parent


def test_one_request_cannot_take_a_pf_and_its_vf(host):
    layout = st.HostLayout((st.PfLayout("intel-x710", "0000:3b:00.0",
                                        numvfs=1, netdev="ens1f0"),))
    tracker = Host(host.root.parent / "one", layout).tracker()
    with pytest.raises(exception.ClaimFailed):
        tracker.claim(new_uuid(), [
            PortRequest(0, flavor="intel"),
            PortRequest(1, flavor="pf", needs_netdev=False)])
    assert tracker.allocations() == []


@pytest.mark.parametrize("flavor,cells,expected_prefix", [
    ("req", {1}, "0000:af:"), ("pref", {1}, "0000:af:"),
    ("intel", {0}, "0000:3b:"), ("pref", {7}, "0000:3b:")])
def test_numa_policies_pick_the_instances_cells(tracker, flavor, cells,
                                                expected_prefix):
    (alloc,) = tracker.claim(new_uuid(), [PortRequest(0, flavor=flavor)],
                             numa_cells=cells)
    assert alloc.address.startswith(expected_prefix)


def test_required_numa_refuses_other_nodes(tracker):
    with pytest.raises(exception.ClaimFailed, match="NUMA node"):
        tracker.claim(new_uuid(), [PortRequest(0, flavor="req")],
                      numa_cells={5})


def test_inline_spec_is_an_anonymous_flavor(tracker):
    (alloc,) = tracker.claim(new_uuid(), [PortRequest(
        0, spec={"physical_network": "physnet2", "group": "grp1"})])
    assert alloc.address.startswith("0000:5e") and alloc.flavor is None
    with pytest.raises(exception.ClaimFailed, match="special attribute"):
        tracker.claim(new_uuid(), [PortRequest(
            0, spec={"physical_network": "physnet2"})])


def test_states_claimed_allocated_and_free_idempotent(tracker, host):
    inst = new_uuid()
    tracker.claim(inst, [PortRequest(0, flavor="net1"),
                         PortRequest(1, flavor="grp1")])
    assert {a.state for a in tracker.allocate(inst)} == {PLUGGED}
    assert {r.state for r in Ledger(host.ledger_path).records()} == {
        PLUGGED}
    assert len(tracker.free(inst)) == 2
    assert tracker.free(inst) == []
    assert tracker.allocations() == []


def test_a_port_cannot_be_claimed_twice(tracker):
    inst = new_uuid()
    tracker.claim(inst, [PortRequest(0, flavor="net1")])
    with pytest.raises(exception.InvalidPortRequest,
                       match="already holds a device"):
        tracker.claim(inst, [PortRequest(0, flavor="net1")])
    # Another port of the same instance is fine.
    tracker.claim(inst, [PortRequest(1, flavor="net1")])
    assert len(tracker.allocations(inst)) == 2


@pytest.mark.parametrize("bad", ["not-a-uuid", "4F1A2B3C-0000-4000-8000-"
                                 "00000000ABCD", "", None])
def test_instance_ids_must_be_canonical(tracker, bad):
    with pytest.raises(exception.InvalidInstanceId, match="canonical UUID"):
        tracker.claim(bad, [PortRequest(0, flavor="net1")])


def test_restart_reloads_exactly_the_allocations(host):
    first = host.tracker()
    a, b = new_uuid(), new_uuid()
    first.claim(a, [PortRequest(0, flavor="net1", mac="52:54:00:00:00:01"),
                    PortRequest(1, flavor="grp1")])
    first.claim(b, [PortRequest(0, flavor="intel", vlan=7)])
    first.allocate(a)
    before = first.allocations()
    first.close()
    second = host.tracker()
    assert second.allocations() == before
    # And it does not hand them out again.
    taken = {x.address for x in before}
    for _ in range(2):
        try:
            got = second.claim(new_uuid(), [PortRequest(0, flavor="intel")])
        except exception.ClaimFailed:
            break
        assert got[0].address not in taken


def test_device_vanishing_while_held_is_kept_then_dropped(tracker, host):
    inst = new_uuid()
    (alloc,) = tracker.claim(inst, [PortRequest(0, flavor="grp1")])
    st.vanish(host.tree, alloc.address)
    report = tracker.update_devices(sysfs_scan.scan(host.root), host.specs)
    assert report.vanished_in_use == (alloc.address,)
    (kept,) = tracker.allocations(inst)
    assert kept.vanished and kept.address == alloc.address
    tracker.free(inst)
    report = tracker.update_devices(sysfs_scan.scan(host.root), host.specs)
    assert report.vanished_in_use == ()
    assert alloc.address not in {d.address for d in tracker.explain(
        "grp1").devices}


def test_rescan_adds_new_and_drops_vanished_free_devices(tracker, host):
    st.vanish(host.tree, "0000:af:02.1")
    report = tracker.update_devices(sysfs_scan.scan(host.root), host.specs)
    assert report.removed == ("0000:af:02.1",)
    bigger = st.build_tree(host.root.parent / "sys2", st.HostLayout((
        *LAYOUT.pfs, st.PfLayout("intel-e810", "0000:d8:00.0", numvfs=1,
                                 netdev="ens7f0"))))
    report = tracker.update_devices(sysfs_scan.scan(bigger.root),
                                    host.specs)
    assert set(report.added) == {"0000:af:02.1", "0000:d8:00.0",
                                 "0000:d8:01.0"}


def test_concurrent_claims_never_share_a_device(host):
    tracker = host.tracker()
    results: list[str] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            inst = new_uuid()
            try:
                allocs = tracker.claim(inst, [PortRequest(0,
                                                          flavor="intel")])
            except exception.ClaimFailed:
                continue
            except Exception as exc:  # recorded for the assertion below
                errors.append(exc)
                return
            with lock:
                results.extend(a.address for a in allocs)
            if len(results) % 2:
                tracker.free(inst)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results
    now = tracker.allocations()
    addresses = [a.address for a in now]
    assert len(addresses) == len(set(addresses))
    ledger = Ledger(host.ledger_path).records()
    assert sorted(r.address for r in ledger) == sorted(addresses)


def test_two_trackers_on_one_ledger_stay_consistent(host):
    agent, cli = host.tracker(), host.tracker()
    taken = set()
    for i in range(5):
        tracker = (agent, cli)[i % 2]
        try:
            (alloc,) = tracker.claim(new_uuid(),
                                     [PortRequest(0, flavor="intel")])
        except exception.ClaimFailed:
            break
        assert alloc.address not in taken
        taken.add(alloc.address)
    assert len(taken) == 5
    assert held(agent) == held(cli)
    inst = next(iter(held(agent).values()))[0]
    cli.free(inst)
    assert held(agent) == held(cli)


def test_a_second_process_claims_through_the_same_ledger(host, tmp_path):
    agent = host.tracker()
    mine = agent.claim(new_uuid(), [PortRequest(0, flavor="grp1")])[0]
    conf = write_host_conf(tmp_path / "pci.conf", sysfs_root=host.root,
                           state_path=host.ledger_path,
                           device_specs=SPECS, flavors=FLAVORS)
    other = new_uuid()
    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", "--config-file",
         str(conf), "claim", other, "grp1", "--format", "json"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)["allocations"][0]["address"]
    assert theirs != mine.address
    assert held(agent)[theirs] == (other, 0)
    with pytest.raises(exception.ClaimFailed):
        agent.claim(new_uuid(), [PortRequest(0, flavor="grp1")])


def test_ledger_write_failure_leaves_memory_and_ledger_unchanged(host):
    tracker = host.tracker(busy_timeout=0.05)
    before = held(tracker)
    # A second connection holds the write lock: the claim's transaction
    # cannot start, a fault produced for real.
    blocker = sqlite3.connect(host.ledger_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(exception.LedgerError, match=r"claims\.db"):
            tracker.claim(new_uuid(), [PortRequest(0, flavor="net1")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert held(tracker) == before
    # Nothing was half-done: the same claim now succeeds on a free VF.
    tracker.claim(new_uuid(), [PortRequest(0, flavor="net1")])


def test_explain_reasons_and_satisfiable(tracker):
    inst = new_uuid()
    tracker.claim(inst, [PortRequest(0, flavor="net1")])
    result = tracker.explain("net1", count=3)
    why = {d.address: d.reason for d in result.devices}
    assert why["0000:3b:00.0"] == ("a PF, and the flavor does not ask for "
                                   "device_type type-PF")
    assert why["0000:3b:02.0"] == f"in use by instance {inst} port 0"
    assert why["0000:3b:02.3"] == ("no netdev (bound to vfio-pci), so it "
                                   "cannot back a macvtap interface")
    assert why["0000:5e:00.2"] == ("physical_network is physnet2; the "
                                   "flavor asks for physnet1")
    assert why["0000:3b:02.1"] is None
    # Free and matching: 3b:02.1, 3b:02.2, af:02.0, af:02.1.
    assert result.satisfiable
    assert not tracker.explain("net1", count=5).satisfiable
    assert tracker.explain("grp1", count=2).satisfiable
    assert not tracker.explain("grp1", count=3).satisfiable


def test_device_states(tracker, host):
    states = tracker.device_states()
    assert set(states.values()) == {"available"}
    inst = new_uuid()
    (alloc,) = tracker.claim(inst, [PortRequest(0, flavor="intel")])
    states = tracker.device_states()
    assert states[alloc.address] == "claimed"
    assert states[alloc.parent_addr] == "unavailable"
    tracker.allocate(inst)
    assert tracker.device_states()[alloc.address] == "plugged"
    st.vanish(host.tree, alloc.address)
    tracker.update_devices(sysfs_scan.scan(host.root), host.specs)
    assert tracker.device_states()[alloc.address] == "vanished"
    tracker.free(inst)
    states = tracker.device_states()
    assert alloc.address not in states
    assert states[alloc.parent_addr] == "available"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hst.lists(hst.tuples(hst.sampled_from(["claim", "free"]),
                            hst.integers(0, 5),
                            hst.sampled_from(["intel", "pf", "net1",
                                              "grp1"])),
                 max_size=30))
def test_random_claims_and_frees_keep_the_invariants(tmp_path_factory,
                                                     steps):
    host = Host(tmp_path_factory.mktemp("prop"))
    tracker = host.tracker()
    instances = [str(uuid.UUID(int=i + 1)) for i in range(6)]
    for action, who, flavor in steps:
        inst = instances[who]
        if action == "free":
            tracker.free(inst)
            continue
        index = len(tracker.allocations(inst))
        with contextlib.suppress(exception.ClaimFailed):
            tracker.claim(inst, [PortRequest(index, flavor=flavor,
                                             needs_netdev=flavor != "pf")])
    allocs = tracker.allocations()
    addresses = [a.address for a in allocs]
    # No device twice; never a PF together with one of its VFs.
    assert len(addresses) == len(set(addresses))
    held = set(addresses)
    assert not [a for a in allocs if a.parent_addr in held]
    # Memory and ledger agree, and a restart sees the same.
    ledger = sorted(r.address for r in Ledger(host.ledger_path).records())
    assert ledger == sorted(addresses)
    tracker.close()
    assert host.tracker().allocations() == allocs
