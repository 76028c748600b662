"""A PF provider's name held by another tree (a stranger's provider, or
a re-created compute node's old one), against a real Placement: sync
names the holder and what to do, makes every other provider and
allocation right, and exits 1 with one line for it; doctor reports it
as its own finding, which --fix leaves to the operator."""

import json
import subprocess
import sys
import uuid

import pytest
from conf_files import write_demo_host_conf
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import PLACEMENT_KINDS

pytestmark = [pytest.mark.functional, pytest.mark.placement]

CX6_CLASS = "CUSTOM_PCI_15B3_101E"


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", *argv],
        capture_output=True, text=True, timeout=120)


def tree_providers(client, root):
    return {rp["name"]: rp for rp in client.get(
        f"/resource_providers?in_tree={root}").body["resource_providers"]
        if rp["uuid"] != root}


def test_a_name_held_elsewhere_is_named_and_the_rest_is_synced(
        tmp_path, client, placement_conf_file, nodename) -> None:
    name = nodename()
    conf = agent_host(tmp_path, name)
    host_conf = write_demo_host_conf(tmp_path, name)
    taken, free = f"{name}_0000:3B:00.0_pcipt", f"{name}_0000:5E:00.0_pcipt"
    # nova-compute's root; a stranger's tree holding the X710's name.
    root = client.post("/resource_providers", {"name": name}).body["uuid"]
    other = client.post("/resource_providers",
                        {"name": f"{name}-old"}).body["uuid"]
    holder = client.post("/resource_providers", {
        "name": taken, "parent_provider_uuid": other}).body["uuid"]
    instance = str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(instance, [PortRequest(0, flavor="grp1",
                                           needs_netdev=False)])

    args = ["--config-file", str(host_conf), "--config-file",
            str(placement_conf_file), "placement", "sync"]
    done = _cli(*args)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"pci-passthrough: error: provider "
                               f"{taken}: the name is held by provider "
                               f"{holder} (root {other}, parent "
                               f"{other})")
    assert f"openstack resource provider delete {holder}" in lines[0]
    # The other provider was made, and the instance's unit healed on it.
    mine = tree_providers(client, root)
    assert sorted(mine) == [free]
    cx6 = mine[free]["uuid"]
    assert client.get(f"/resource_providers/{cx6}/inventories").body[
        "inventories"][CX6_CLASS]["total"] == 3
    assert {rp: a["resources"] for rp, a in client.get(
        f"/allocations/{instance}").body["allocations"].items()} == {
        cx6: {CX6_CLASS: 1}}
    # The stranger's provider is untouched.
    assert client.get(f"/resource_providers/{holder}").body[
        "parent_provider_uuid"] == other
    as_json = _cli(*args, "--format", "json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["names_taken"] == [{
        "name": taken, "uuid": holder, "root_uuid": other,
        "parent_uuid": other}]

    # An operator's hand on the free provider: doctor --fix repairs it
    # and leaves the taken name, its own kind, to the operator.
    inv = client.get(f"/resource_providers/{cx6}/inventories").body
    client.put(f"/resource_providers/{cx6}/inventories", {
        "resource_provider_generation": inv["resource_provider_generation"],
        "inventories": {CX6_CLASS: dict(inv["inventories"][CX6_CLASS],
                                        max_unit=1)}})
    with HostAgent(conf) as agent:
        agent.start()
        found = [(f.kind.value, f.subject, f.fixable)
                 for f in agent.doctor(placement=client).findings
                 if f.kind in PLACEMENT_KINDS]
        assert found == [
            ("placement-name-taken", f"provider {taken}", False),
            ("placement-provider", f"provider {free}", True)]
        fixed = {f.kind.value: f for f in agent.doctor(
            fix=True, placement=client).findings}
        assert fixed["placement-provider"].fixed
        left = fixed["placement-name-taken"]
        assert not left.fixed and holder in left.problem
        assert left.left.startswith("not safe to repair automatically: "
                                    f"if {holder} is a previous compute "
                                    f"node's")
    assert client.get(f"/resource_providers/{cx6}/inventories").body[
        "inventories"][CX6_CLASS]["max_unit"] == 3
