"""explain and claim agree, seen from outside: both read the tracker's
one filter chain (tracker/filters.py), and over random sysfs trees,
device_specs, flavor alternatives (some pinning addresses), NUMA cells
and earlier claims, explain's verdict "satisfiable" is whether a claim
of N ports succeeds, every device the claim takes is one explain says
serves, and one port finds a device exactly when one serves.

For ports backing macvtap interfaces (needs_netdev) only VFs with a
netdev serve; VFs never exclude each other, which makes "N serving
devices" and "a claim of N succeeds" the same question.  Other ports
may take PFs, which exclude their VFs: there only a claim's own picks
are compared.

More examples on demand: PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES=2000.
"""

import contextlib
import json
import os
import pathlib
import tempfile
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.tracker import HostTracker

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "60"))
PF_ADDRESSES = ("0000:3b:00.0", "0000:5e:00.0", "0000:af:00.0")
PROFILES = ("intel-x710", "mellanox-cx6dx", "intel-e810")
VENDORS = {"intel-x710": "8086", "mellanox-cx6dx": "15b3",
           "intel-e810": "8086"}


@hst.composite
def hosts(draw):
    pfs = []
    n = draw(hst.integers(1, len(PF_ADDRESSES)))
    for i, address in enumerate(PF_ADDRESSES[:n]):
        numvfs = draw(hst.integers(0, 4))
        drivers = draw(hst.dictionaries(
            hst.integers(0, 3), hst.sampled_from([None, "vfio-pci"]),
            max_size=2))
        pfs.append(st.PfLayout(
            draw(hst.sampled_from(PROFILES)), address, numvfs=numvfs,
            netdev=f"ens{i}f0", numa_node=draw(hst.sampled_from([0, 1,
                                                                 None])),
            vf_drivers={k: v for k, v in drivers.items() if k < numvfs}))
    return st.HostLayout(tuple(pfs))


@hst.composite
def specs_for(draw, layout):
    specs = []
    for pf in layout.pfs:
        if not draw(hst.booleans()) and specs:
            continue  # this PF is not assignable
        spec = {"address": pf.address,
                "physical_network": draw(hst.sampled_from(["pn1", "pn2"]))}
        if draw(hst.booleans()):
            spec["group"] = draw(hst.sampled_from(["g1", "g2"]))
        specs.append(json.dumps(spec))
    return specs


def addresses(layout):
    found = []
    for pf in layout.pfs:
        prof = st.PROFILES[pf.profile]
        found.append(pf.address)
        found += [st.vf_address(pf.address, prof.sriov_offset,
                                prof.sriov_stride, i)
                  for i in range(pf.numvfs)]
    return found


@hst.composite
def flavor_for(draw, layout, tags):
    policy = draw(hst.sampled_from([None, "required", "legacy",
                                    "preferred"]))
    alternatives = []
    for _ in range(draw(hst.integers(1, 3))):
        alt = {"name": "f"}
        if draw(hst.booleans()):
            alt["physical_network"] = draw(hst.sampled_from(["pn1", "pn2"]))
        if "group" in tags and draw(hst.booleans()):
            alt["group"] = draw(hst.sampled_from(["g1", "g2"]))
        if draw(hst.integers(0, 3)) == 0:
            alt["vendor_id"] = draw(hst.sampled_from(["8086", "15b3"]))
        if draw(hst.integers(0, 3)) == 0:
            alt["device_type"] = draw(hst.sampled_from(["type-VF",
                                                        "type-PF"]))
        if draw(hst.integers(0, 2)) == 0:
            alt["address"] = draw(hst.sampled_from(
                [*addresses(layout), "0000:99:00.1"]))
        if draw(hst.integers(0, 4)) == 0:
            alt["numa_node"] = draw(hst.sampled_from([0, 1]))
        if policy is not None:
            alt["numa_policy"] = policy
        alternatives.append(json.dumps(alt))
    return alternatives


@hst.composite
def scenarios(draw):
    layout = draw(hosts())
    specs = draw(specs_for(layout))
    tags = {k for s in specs for k in json.loads(s)} - {"address"}
    return {
        "layout": layout,
        "specs": specs,
        "flavor": draw(flavor_for(layout, tags)),
        "special": draw(hst.sampled_from([["group"], [],
                                          ["group", "physical_network"]])),
        "cells": draw(hst.sampled_from([None, {0}, {1}, {0, 1}])),
        "earlier": draw(hst.lists(hst.integers(1, 2), max_size=3)),
        "count": draw(hst.integers(1, 4)),
        "needs_netdev": draw(hst.booleans()),
    }


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(scenarios())
def test_explain_and_claim_agree(sc):
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "sys"
        st.build_tree(root, sc["layout"])
        specs = devspec.parse_device_specs(sc["specs"])
        flavor_set = flavors.parse_flavors(
            sc["flavor"], known_tags=specs.tag_names,
            special_attributes=sc["special"])
        tracker = HostTracker(flavor_set, Ledger(pathlib.Path(tmp) / "l"))
        try:
            tracker.update_devices(sysfs_scan.scan(str(root)), specs)
            netdev = sc["needs_netdev"]
            for n in sc["earlier"]:
                # Earlier instances take what they can.
                with contextlib.suppress(exception.ClaimFailed):
                    tracker.claim(str(uuid.uuid4()),
                                  [PortRequest(i, flavor="f",
                                               needs_netdev=netdev)
                                   for i in range(n)], sc["cells"])
            count = sc["count"]
            explained = tracker.explain("f", count=count,
                                        numa_cells=sc["cells"],
                                        needs_netdev=netdev)
            one = tracker.explain("f", numa_cells=sc["cells"],
                                  needs_netdev=netdev)
            serving = {d.address for d in explained.devices if d.match}
            try:
                taken = {a.address for a in tracker.claim(
                    str(uuid.uuid4()),
                    [PortRequest(i, flavor="f", needs_netdev=netdev)
                     for i in range(count)], sc["cells"])}
            except exception.ClaimFailed:
                taken = set()
        finally:
            tracker.close()
    claimed = bool(taken)
    assert explained.satisfiable == claimed
    assert taken <= serving
    assert one.satisfiable == bool(serving)
    if netdev:
        assert claimed == (len(serving) >= count), (serving, explained)
