"""doctor --fix against a real Placement, over random drift: whatever
mix of hand edits hypothesis makes to a synced host's providers and
allocations, doctor finds each, --fix repairs every finding it calls
fixable, and what is left is exactly what it called not safe to repair
(allocations no claim explains), untouched."""

import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter

pytestmark = [pytest.mark.functional, pytest.mark.placement]

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "10"))
X710 = "0000:3B:00.0"
CX6 = "0000:5E:00.0"
CLASSES = {X710: "CUSTOM_PCI_8086_154C", CX6: "CUSTOM_PCI_15B3_101E"}

DRIFTS = hst.lists(hst.sampled_from([
    "inventory-total", "inventory-reserved", "inventory-max-unit",
    "trait-removed", "trait-added", "provider-deleted",
    "units-lost", "units-doubled", "stranger", "stale-provider",
    "former-name"]),
    min_size=1, max_size=4, unique=True)


def _generation(client, path: str) -> int:
    return client.get(path).body["resource_provider_generation"]


def drift(client, what: str, node: str, uuids: dict[str, str],
          one: str) -> str | None:
    """Make one hand edit (Placement may refuse an allocation that
    earlier edits left no room for); the consumer it leaves for the
    operator, if any."""
    x710 = uuids[f"{node}_{X710}_pcipt"]
    cx6 = uuids[f"{node}_{CX6}_pcipt"]
    inv_path = f"/resource_providers/{x710}/inventories"
    if what.startswith("inventory-"):
        body = client.get(inv_path).body
        inv = dict(body["inventories"][CLASSES[X710]])
        field = {"inventory-total": "total",
                 "inventory-reserved": "reserved",
                 "inventory-max-unit": "max_unit"}[what]
        inv[field] = {"total": 6, "reserved": 1, "max_unit": 1}[field]
        client.put(inv_path, {
            "resource_provider_generation":
                body["resource_provider_generation"],
            "inventories": {CLASSES[X710]: inv}})
    elif what.startswith("trait-"):
        path = f"/resource_providers/{cx6}/traits"
        resp = client.get(path, expect=(200, 404))
        if resp.status == 404:
            return None  # deleted by an earlier edit
        body = resp.body
        traits = set(body["traits"])
        if what == "trait-removed":
            traits.discard("CUSTOM_PHYSNET_PHYSNET2")
        else:
            traits.add("HW_NIC_SRIOV_TRUSTED")
        client.put(path, {"resource_provider_generation":
                          body["resource_provider_generation"],
                          "traits": sorted(traits)})
    elif what == "provider-deleted":
        # Only an unused one can go: the Mellanox PF holds nothing.
        client.delete(f"/resource_providers/{cx6}", expect=(204, 409))
    elif what in ("units-lost", "units-doubled"):
        body = client.get(f"/allocations/{one}").body
        units = 1 if what == "units-lost" else 4
        client.put(f"/allocations/{one}", {
            "allocations": {x710: {"resources": {CLASSES[X710]: units}}},
            "project_id": body["project_id"], "user_id": body["user_id"],
            "consumer_generation": body["consumer_generation"],
            "consumer_type": "INSTANCE"}, expect=(204, 409))
    elif what == "stranger":
        stranger = str(uuid.uuid4())
        resp = client.put(f"/allocations/{stranger}", {
            "allocations": {x710: {"resources": {CLASSES[X710]: 1}}},
            "project_id": "p", "user_id": "u", "consumer_generation": None,
            "consumer_type": "INSTANCE"}, expect=(204, 409))
        return stranger if resp.status == 204 else None
    elif what == "stale-provider":
        root = client.get(f"/resource_providers?name={node}").body[
            "resource_providers"][0]["uuid"]
        stale = client.post("/resource_providers", {
            "name": f"{node}_0000:AF:00.0",
            "parent_provider_uuid": root}).body["uuid"]
        client.put(f"/resource_providers/{stale}/traits", {
            "resource_provider_generation": 0,
            "traits": ["CUSTOM_PCIPT_SRIOV_VF"]})
    elif what == "former-name":
        # As an earlier release reported it: Nova's name and PCI trait.
        client.put(f"/resource_providers/{x710}", {"name": f"{node}_{X710}"})
        path = f"/resource_providers/{x710}/traits"
        body = client.get(path).body
        client.put(path, {"resource_provider_generation":
                          body["resource_provider_generation"],
                          "traits": [*body["traits"],
                                     "COMPUTE_MANAGED_PCI_DEVICE"]})
    return None


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(drifts=DRIFTS)
def test_fix_repairs_every_fixable_drift_and_only_those(
        tmp_path_factory, client, nodename, drifts) -> None:
    node = nodename()
    conf = agent_host(tmp_path_factory.mktemp("host"), node)
    client.post("/resource_providers", {"name": node})
    one = str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(one, [PortRequest(i, flavor="net1", needs_netdev=False)
                          for i in range(2)])
        uuids = host_view(conf).sync(Reporter(client)).provider_uuids
        assert agent.doctor(placement=client).findings == ()
        strangers = [s for s in (drift(client, what, node, uuids, one)
                                 for what in drifts) if s]
        found = agent.doctor(placement=client).findings
        assert found, drifts
        fixed = agent.doctor(fix=True, placement=client)
        left = [(f.kind.value, f.subject) for f in fixed.findings
                if not f.fixed]
        assert all(f.fixed for f in fixed.findings if f.fixable), \
            (drifts, fixed.findings)
        assert left == [("placement-consumer", f"consumer {s}")
                        for s in strangers]
        again = agent.doctor(placement=client).findings
        assert [(f.kind.value, f.subject) for f in again] == left
        for stranger in strangers:
            assert client.get(f"/allocations/{stranger}").body[
                "allocations"], "an allocation not ours was touched"
