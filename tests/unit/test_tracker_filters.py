"""The filter chain: what each pool check lets selection skip, what a
pick is, and the reasons of the filters only a claim of several ports
meets."""

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import CLAIMED, Ledger, LedgerRecord
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.tracker import HostTracker, filters
from pci_passthrough.tracker._availability import AvailabilityIndex
from pci_passthrough.tracker._health import PfHealth
from pci_passthrough.tracker._holdings import Holdings
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker._selection import Selector

SPECS = (
    '{"vendor_id": "8086", "physical_network": "physnet1"}',
    '{"vendor_id": "15b3", "physical_network": "physnet2", '
    '"group": "grp1"}',
)
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=3, numa_node=0,
                netdev="ens1f0", vf_drivers={2: "vfio-pci"}),
    st.PfLayout("intel-e810", "0000:af:00.0", numvfs=2, numa_node=None,
                netdev="ens5f0"),
    st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=2, numa_node=1,
                netdev="ens2f0np0", switchdev=True),
))


class Parts:
    """The tracker's parts over one scanned tree and an empty ledger."""

    def __init__(self, tmp_path):
        st.build_tree(tmp_path / "sys", LAYOUT)
        self.specs = devspec.parse_device_specs(SPECS)
        self.inventory = Inventory()
        self.inventory.replace(sysfs_scan.scan(tmp_path / "sys"),
                               self.specs)
        self.ledger = Ledger(tmp_path / "claims.db")
        self.holdings = Holdings(self.ledger, self.inventory)
        self.health = PfHealth()
        self.facts = filters.HostFacts(self.holdings, self.health)
        self.index = AvailabilityIndex(self.inventory, self.facts)

    def selector(self, flavor_values):
        flavor_set = flavors.parse_flavors(
            flavor_values, known_tags=self.specs.tag_names,
            special_attributes=["group"])
        return Selector(flavor_set, self.inventory, self.facts)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    made = Parts(tmp_path_factory.mktemp("filters"))
    yield made
    made.ledger.close()


def record(address):
    return LedgerRecord(instance_uuid=str(uuid.uuid4()), port_index=0,
                        address=address, state=CLAIMED, flavor="f",
                        request=json.dumps({"flavor": "f"}), netdev=None)


@hst.composite
def alternatives(draw):
    alt = {"name": "f"}
    for key, values in (("physical_network", ["physnet1", "physnet2"]),
                        ("group", ["grp1"]),
                        ("vendor_id", ["8086", "15b3"]),
                        ("device_type", ["type-VF", "type-PF"]),
                        ("address", ["0000:3b:02.0", "0000:af:00.0",
                                     "0000:5e:00.3"]),
                        ("numa_policy", ["required", "legacy",
                                         "preferred"])):
        if draw(hst.integers(0, 2)) == 0:
            alt[key] = draw(hst.sampled_from(values))
    return json.dumps(alt)


@hst.composite
def situations(draw, addresses):
    some = hst.lists(hst.sampled_from(addresses), max_size=3, unique=True)
    return {
        "flavor": draw(hst.lists(alternatives(), min_size=1, max_size=2)),
        "needs_netdev": draw(hst.booleans()),
        "cells": draw(hst.sampled_from([None, {0}, {1}, {0, 1}])),
        "held": draw(some), "journalled": draw(some), "taken": draw(some),
        "allowed": draw(hst.none() | hst.sets(hst.sampled_from(addresses))),
        "unhealthy": draw(hst.lists(hst.sampled_from(
            ["0000:3b:00.0", "0000:5e:00.0"]), max_size=1)),
    }


ADDRESSES = ["0000:3b:00.0", "0000:3b:02.0", "0000:3b:02.1",
             "0000:3b:02.2", "0000:af:00.0", "0000:af:01.0", "0000:af:01.1",
             "0000:5e:00.0", "0000:5e:00.2", "0000:5e:00.3"]


def test_the_chain_runs_in_the_documented_order():
    assert [f.name for f in filters.CHAIN] == [
        "attributes", "state", "taken", "netdev", "numa", "allocated"]
    assert [f.name for f in filters.STATE_CHAIN] == [
        "held", "unhealthy", "journalled", "pf-held", "vfs-held"]


def test_the_layout_has_the_addresses_the_examples_name(parts):
    assert sorted(parts.inventory.entries) == sorted(ADDRESSES)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(situations(ADDRESSES))
def test_a_pick_is_a_device_the_chain_lets_serve(parts, sc):
    selector = parts.selector(sc["flavor"])
    parts.holdings.load([record(a) for a in sc["held"]])
    parts.holdings.journalled = set(sc["journalled"])
    parts.health.unhealthy = {pf: "has no driver (unbound)"
                              for pf in sc["unhealthy"]}
    parts.index.reindex()
    req = selector.request(
        selector.flavors.get("f"), sc["needs_netdev"], sc["cells"],
        sc["allowed"], {a: parts.inventory.parent(a) for a in sc["taken"]})
    entries = parts.inventory.entries
    serving = {a for a, e in entries.items()
               if filters.why_not(e, req, parts.facts) is None}
    # A pool check says no only of pools none of whose members serve.
    for pool in parts.inventory.pools.values():
        if not (filters.pool_may_serve(pool, req, per_flavor=True)
                and filters.pool_may_serve(pool, req, per_flavor=False)):
            members = {a for a, e in entries.items() if e.pool is pool}
            assert not members & serving
    picked = selector.pick(req)
    assert (picked is None) == (not serving)
    assert picked is None or picked in serving


def test_a_device_outside_the_allocation_is_not_among_its_devices(parts):
    parts.holdings.load([])
    parts.index.reindex()
    selector = parts.selector(['{"name": "f", "vendor_id": "8086"}'])
    req = selector.request(selector.flavors.get("f"), True, None,
                           allowed={"0000:3b:02.1"})
    why = {a: filters.why_not(e, req, parts.facts)
           for a, e in parts.inventory.entries.items()}
    assert why["0000:3b:02.0"] == (
        "not among the devices allocated to the port")
    assert why["0000:3b:02.1"] is None
    assert selector.pick(req) == "0000:3b:02.1"


@pytest.mark.parametrize("first,second,reason", [
    (PortRequest(0, flavor="vf"),
     PortRequest(1, flavor="pf", needs_netdev=False),
     "its VF 0000:3b:02.0 is taken by an earlier port of this request"),
    (PortRequest(0, flavor="pf", needs_netdev=False),
     PortRequest(1, flavor="vf"),
     "its PF 0000:3b:00.0 is taken by an earlier port of this request"),
    (PortRequest(0, flavor="vf"), PortRequest(1, flavor="vf"),
     "taken by an earlier port of this request"),
])
def test_a_claim_names_the_earlier_port_that_took_the_device(
        tmp_path, first, second, reason):
    st.build_tree(tmp_path / "sys", st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=1, netdev="ens1f0"),)))
    specs = devspec.parse_device_specs([SPECS[0]])
    flavor_set = flavors.parse_flavors(
        ['{"name": "vf", "vendor_id": "8086"}',
         '{"name": "pf", "vendor_id": "8086", "device_type": "type-PF"}'],
        known_tags=specs.tag_names, special_attributes=[])
    tracker = HostTracker(flavor_set, Ledger(tmp_path / "claims.db"))
    try:
        tracker.update_devices(sysfs_scan.scan(tmp_path / "sys"), specs)
        with pytest.raises(exception.ClaimFailed) as err:
            tracker.claim(str(uuid.uuid4()), [first, second])
        assert f"{reason} (1 device)" in str(err.value)
        assert "0 free matching device(s) for 1 wanted" in str(err.value)
        assert tracker.allocations() == []
    finally:
        tracker.close()
