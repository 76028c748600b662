"""The property that makes Placement safe to schedule with: over random
hosts and configurations, the providers a real Placement offers for a
flavor are exactly those whose VFs the library's own matcher gives to
the flavor, special attributes included; and Placement finds room for N
devices on a host exactly when the host's tracker can claim N."""

import itertools
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough.config import devspec
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.random_config import random_host
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.model import device_attrs
from pci_passthrough.placement import requests
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter
from pci_passthrough.tracker import HostTracker, matching

pytestmark = [pytest.mark.functional, pytest.mark.placement]

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "12"))
_hosts = itertools.count()


def offered(client, query, ours):
    body = client.get(f"/allocation_candidates?{query}").body
    return [req for req in body["allocation_requests"]
            if set(req["allocations"]) <= ours]


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(seed=hst.integers(0, 2**32 - 1))
def test_placement_offers_exactly_what_the_matcher_serves(
        tmp_path_factory, client, seed) -> None:
    config = random_host(random.Random(seed))
    workdir = tmp_path_factory.mktemp("host")
    st.build_tree(workdir / "sys", config.layout)
    conf = host_conf(workdir, device_specs=config.device_specs,
                     flavors=config.flavors, network_driver="noop")
    conf.set_override("special_attributes",
                      list(config.special_attributes),
                      group="pci_passthrough")
    conf.set_override("nodename", f"prop{os.getpid()}-{next(_hosts)}",
                      group="pci_passthrough")
    view = host_view(conf)
    report = view.sync(Reporter(client))
    by_uuid = {}
    for p in client.get(f"/resource_providers?in_tree={report.root_uuid}"
                        ).body["resource_providers"]:
        by_uuid[p["uuid"]] = p["name"]
    ours = set(by_uuid)
    specs = devspec.parse_device_specs(list(config.device_specs))
    scan = sysfs_scan.scan(str(workdir / "sys"))
    attrs = {d.address: device_attrs.device_attrs(d, specs.match(d) or {})
             for d in scan.devices if d.is_vf}
    special = view.flavors.special_attributes
    catalog = view.tree.catalog()
    tracker, _ = HostTracker.from_conf(conf)
    try:
        for name, alternatives in view.flavors.flavors.items():
            expected = {p.name for p in view.tree.providers
                        if any(matching.first_mismatch(
                            alternatives, attrs[vf], special) is None
                            for vf in p.vfs)}
            # Unpruned, Placement alone decides; pruned, the library
            # leaves out only queries Placement would answer with nothing.
            for prune in (False, True):
                got = set()
                for query in requests.request_queries(
                        view.flavors, name, 1, catalog, prune=prune):
                    for req in offered(client, query, ours):
                        got |= {by_uuid[rp] for rp in req["allocations"]}
                assert got == expected, (seed, name, prune, config)
            for count in (2, 3):
                fits = any(offered(client, q, ours)
                           for q in requests.request_queries(
                               view.flavors, name, count, catalog))
                can = tracker.explain(name, count=count).satisfiable
                assert fits == can, (seed, name, count, config)
    finally:
        tracker.close()
