"""The one table of port state changes, and the tracker enforcing it."""

import itertools
import uuid

import pytest

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery.sysfs_scan import scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.states import (
    STORED,
    TRANSITIONS,
    PortState,
    check_transition,
)
from pci_passthrough.tracker import HostTracker

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
PAIRS = list(itertools.product(PortState, PortState))


def test_the_table_names_every_state_and_reaches_each_from_none():
    assert set(TRANSITIONS) == set(PortState)
    reached, todo = set(), [PortState.NONE]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert reached == set(PortState) - {PortState.NONE}
    # Nothing goes back to "no claim" but through a release, and nothing
    # leaves "released".
    assert all(PortState.NONE not in t for t in TRANSITIONS.values())
    assert TRANSITIONS[PortState.RELEASED] == frozenset()
    assert set(PortState) - {PortState.NONE, PortState.RELEASED} == STORED


def test_the_lifecycle_and_both_migration_sides_are_allowed():
    paths = [
        ("none", "claimed", "plugged", "plugged", "released"),
        ("none", "claimed", "released"),
        # source of a live migration: completed, or rolled back
        ("plugged", "outgoing", "released"),
        ("plugged", "outgoing", "plugged"),
        # destination: leased, then confirmed or aborted
        ("none", "incoming", "incoming", "plugged"),
        ("none", "incoming", "released"),
    ]
    for path in paths:
        for old, new in itertools.pairwise(path):
            assert check_transition(INST, 0, old, new) == new


@pytest.mark.parametrize("old,new", [p for p in PAIRS
                                     if p[1] not in TRANSITIONS[p[0]]])
def test_every_change_not_in_the_table_is_refused(old, new):
    with pytest.raises(exception.InvalidStateTransition) as err:
        check_transition(INST, 3, old, new)
    allowed = ", ".join(sorted(TRANSITIONS[old])) or "nothing"
    assert str(err.value) == (
        f"Instance {INST} port 3 cannot go from state {old} to {new}; from "
        f"{old} it may go to: {allowed}.")


def test_an_unknown_state_is_refused_by_name():
    with pytest.raises(exception.InvalidStateTransition,
                       match="from state allocated to plugged"):
        check_transition(INST, 0, "allocated", "plugged")


@pytest.fixture
def tracker(tmp_path):
    root = tmp_path / "sys"
    st.build_tree(root, st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0"),)))
    specs = devspec.parse_device_specs(['{"vendor_id": "8086"}'])
    fl = flavors.parse_flavors(['{"name": "f", "vendor_id": "8086"}'],
                               known_tags=specs.tag_names,
                               special_attributes=[])
    t = HostTracker(fl, Ledger(tmp_path / "claims.db"))
    t.update_devices(scan(str(root)), specs)
    yield t
    t.close()


def test_the_tracker_refuses_an_illegal_change_and_keeps_the_ledger(
        tracker):
    inst = str(uuid.uuid4())
    tracker.claim(inst, [PortRequest(0, flavor="f"),
                         PortRequest(1, flavor="f")])
    with pytest.raises(exception.InvalidStateTransition,
                       match=f"Instance {inst} port 0 cannot go from state "
                             f"claimed to outgoing"):
        tracker.transition(inst, PortState.OUTGOING)
    assert {a.state for a in tracker.allocations(inst)} == {"claimed"}
    tracker.allocate(inst)
    tracker.allocate(inst)  # plugging again is allowed
    with pytest.raises(exception.InvalidStateTransition,
                       match="from state plugged to claimed"):
        tracker.transition(inst, PortState.CLAIMED)
    assert {a.state for a in tracker.allocations(inst)} == {"plugged"}
    tracker.transition(inst, PortState.OUTGOING)
    assert {a.state for a in tracker.allocations(inst)} == {"outgoing"}
    assert len(tracker.free(inst)) == 2
