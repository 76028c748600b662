"""The code samples of the README's "Using it from a nova-compute fork",
run as written on two simulated hosts (sysfs trees in tmp_path,
libvirt's test driver, ledgers), with small stand-ins for nova's
objects: an instance with a flavor's extra specs, network_info's VIFs as
the dicts nova's network model makes, and the PCI requests nova-api
makes for its macvtap ports.  The first sample is the fork's calls on
the plugin: every plugin method it names is one the fork's patches
call."""

import pathlib
import re
import types
import uuid

from oslo_config import cfg

from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.nova_provider_tree import NovaProviderTree
from pci_passthrough.model import placement_names as names
from pci_passthrough.nova.sriov_plugin import SriovPlugin

ROOT = pathlib.Path(__file__).parents[2]
README = ROOT / "README.rst"
PATCHES = ROOT / "nova_fork" / "patches"


def fork_samples() -> list[str]:
    section = README.read_text().split(
        "Using it from a nova-compute fork\n===", 1)[1]
    section = section.split("\n=====", 1)[0]
    samples = []
    for block in section.split(".. code-block:: python\n")[1:]:
        lines = []
        for line in block.splitlines()[1:]:
            if line and not line.startswith("   "):
                break
            lines.append(line[3:])
        samples.append("\n".join(lines))
    return samples


def fork_sample() -> str:
    """The library's calls underneath the plugin."""
    return fork_samples()[1]


def pci_request(port_id, physnet="physnet1"):
    """An InstancePCIRequest as nova-api makes it for a macvtap port."""
    return types.SimpleNamespace(
        requester_id=port_id, request_id=str(uuid.uuid4()), count=1,
        spec=[{"physical_network": physnet, "remote_managed": "False",
               "sriov_plugin": "pci_passthrough"}])


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


def test_the_readme_plugin_sample_runs(tmp_path):
    with AgentHost(tmp_path / "src") as src, \
            AgentHost(tmp_path / "dst") as dst:
        src.conf.register_opt(cfg.StrOpt("host", default="src"))
        instance = types.SimpleNamespace(
            uuid=new_uuid(),
            flavor=types.SimpleNamespace(name="m1.small", extra_specs={}))
        network_info = [vif(mac="fa:16:3e:00:00:01"), vif("normal"),
                        vif(mac="fa:16:3e:00:00:02")]
        ours = [network_info[0], network_info[2]]
        new_vif = vif(mac="fa:16:3e:00:00:03")
        dest_plugin = SriovPlugin(dst.conf)
        dest_plugin.init_host("dst")
        provider_tree = NovaProviderTree("src")
        scope = {"CONF": src.conf, "instance": instance,
                 "network_info": network_info, "nodename": "src",
                 "provider_tree": provider_tree,
                 "plugin_requests": [pci_request(v["id"]) for v in ours],
                 "new_request": pci_request(new_vif["id"]),
                 "new_vif": new_vif, "dest_plugin": dest_plugin,
                 # The standard host's flavors name no resource class:
                 # the scheduler placed no port, allocated no VF.
                 "allocations": {}, "dest_allocations": {}}
        try:
            exec(compile(fork_samples()[0], str(README), "exec"), scope)
            assert scope["groups"] == [None, None]
            assert names.marker_trait("group") in scope["traits"]
            # One unit per VF on its PF's provider (read from the sysfs
            # tree): both VFs here are on one PF.
            (pf,) = {src.tree.devices[p["pci_slot"]].parent_addr
                     for p in scope["profiles"].values()}
            provider = provider_tree.data(f"src_{pf.upper()}_pcipt")
            (rc,) = provider.inventory
            assert scope["resources"] == {
                provider.uuid: {"resources": {rc: 2}}}
            assert sum(sum(a["resources"].values()) for a in
                       scope["port_resources"].values()) == 1
            profiles = scope["profiles"]
            assert set(profiles) == {v["id"] for v in ours}
            assert len({p["pci_slot"] for p in profiles.values()}) == 2
            assert scope["networks"] == [
                f"pcipt-{instance.uuid}-0", f"pcipt-{instance.uuid}-1"]
            assert scope["slots"] == {ours[0]["id"]: 0, ours[1]["id"]: 1}
            assert set(scope["dest_profiles"]) == {v["id"] for v in ours}
            # Both ends are left clean: the instance was deleted on the
            # destination after its migration.
            assert scope["plugin"].agent is None
            assert dest_plugin.agent.allocations() == []
            assert dest_plugin.agent.doctor().findings == ()
        finally:
            dest_plugin.cleanup_host("dst")
        with src.new_agent() as agent:
            assert agent.allocations() == []
            assert agent.doctor().findings == ()


def test_the_plugin_methods_of_the_sample_are_those_the_patches_call():
    sample = fork_samples()[0]
    named = set(re.findall(r"\b(?:dest_)?plugin\.([a-z_]+)\(", sample))
    added = "\n".join(
        line for patch in sorted(PATCHES.glob("*.patch"))
        for line in patch.read_text().splitlines()
        if line.startswith("+") and not line.startswith("+++"))
    # self._sriov_plugin.X(, self.driver.sriov_plugin.X(, plugin.X(
    called = set(re.findall(r"\b_?(?:sriov_)?plugin\.([a-z_]+)\(", added))
    assert len(named) >= 22
    assert named - called == set()
    # And the other way: the sample leaves out no call of the fork's
    # (the fork's modules nova.conf.sriov_plugin and
    # nova.virt.libvirt.sriov_plugin have these functions).
    assert called - named - {"load", "register_opts"} == set()
