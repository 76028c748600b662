"""The code sample of the README's "Using it from a nova-compute fork",
run as written on two simulated hosts (sysfs trees in tmp_path,
libvirt's test driver, ledgers), with small stand-ins for nova's
objects: an instance with a flavor's extra specs, and network_info's
VIFs as the dicts nova's network model makes."""

import pathlib
import types
import uuid

from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid

README = pathlib.Path(__file__).parents[2] / "README.rst"


def fork_sample() -> str:
    section = README.read_text().split(
        "Using it from a nova-compute fork\n===", 1)[1]
    block = section.split(".. code-block:: python\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("   "):
            break
        lines.append(line[3:])
    return "\n".join(lines)


def vif(vnic_type="macvtap", mac="fa:16:3e:00:00:01"):
    """A VIF of network_info (nova.network.model.VIF is a dict)."""
    return {"id": str(uuid.uuid4()), "address": mac,
            "vnic_type": vnic_type, "profile": {}, "details": {},
            "network": {"id": str(uuid.uuid4()), "label": "provider",
                        "meta": {"physical_network": "physnet1"}}}


def test_the_readme_fork_sample_runs(tmp_path):
    with AgentHost(tmp_path / "src") as src, \
            AgentHost(tmp_path / "dst") as dst:
        instance = types.SimpleNamespace(
            uuid=new_uuid(),
            flavor=types.SimpleNamespace(name="m1.small", extra_specs={}))
        network_info = [vif(mac="fa:16:3e:00:00:01"), vif("normal"),
                        vif(mac="fa:16:3e:00:00:02")]
        new_vif = vif(mac="fa:16:3e:00:00:03")
        dest_agent = dst.new_agent()
        scope = {"CONF": src.conf, "instance": instance,
                 "network_info": network_info, "new_vif": new_vif,
                 "cells": None, "dest_agent": dest_agent}
        exec(compile(fork_sample(), str(README), "exec"), scope)
        agent = scope["agent"]
        try:
            ours = [network_info[0], network_info[2]]
            source_vfs = {v["profile"]["pci_slot"] for v in ours}
            assert len(source_vfs) == 2
            assert network_info[1]["profile"] == {}
            assert new_vif["profile"]["pci_slot"] not in source_vfs
            assert scope["slots"] == {ours[0]["id"]: 0, ours[1]["id"]: 1}
            assert set(scope["dest_profiles"]) == {v["id"] for v in ours}
            # Both ends are left clean: the instance was destroyed on
            # the destination after its migration.
            assert agent.allocations() == []
            assert dest_agent.allocations() == []
            assert scope["report"].findings == ()
        finally:
            agent.close()
