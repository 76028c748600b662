"""The plugin's refusals are nova's exceptions, the ones whose handling
makes nova try another host or refuse an attach (tox -e nova-compat
installs nova; elsewhere these tests skip). On a simulated host: a
sysfs tree in tmp_path, libvirt's test driver, a ledger."""

import types
import uuid

import pytest

from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.nova_provider_tree import NovaProviderTree
from pci_passthrough.nova.sriov_plugin import SriovPlugin

nova_exception = pytest.importorskip("nova.exception")


def pci_request(physnet="physnet1"):
    return types.SimpleNamespace(
        requester_id=str(uuid.uuid4()),
        spec=[{"physical_network": physnet, "sriov_plugin": "x"}])


@pytest.fixture
def plugin(tmp_path):
    with AgentHost(tmp_path / "h") as host:
        plugin = SriovPlugin(host.conf)
        plugin.init_host("h")
        yield plugin
        plugin.cleanup_host("h")


def instance():
    return types.SimpleNamespace(
        uuid=new_uuid(), flavor=types.SimpleNamespace(extra_specs={}))


def test_a_host_without_the_ports_vfs_is_unavailable_to_nova(plugin):
    inst = instance()
    with pytest.raises(nova_exception.ComputeResourcesUnavailable,
                       match=r"SR-IOV ports on node h: .*physnet9"):
        plugin.claim_instance(inst, [pci_request("physnet9")], "h")
    assert plugin.agent.allocations() == []


def test_a_malformed_request_is_unavailable_too(plugin):
    bad = types.SimpleNamespace(requester_id="eth0", spec=[{}])
    with pytest.raises(nova_exception.ComputeResourcesUnavailable,
                       match="a port id is a UUID"):
        plugin.claim_port(instance(), bad, "h")


def test_a_destination_that_cannot_serve_refuses_the_migration(plugin):
    inst = instance()
    vif = {"id": str(uuid.uuid4()), "address": "fa:16:3e:00:00:01",
           "vnic_type": "macvtap", "profile": {}, "details": {},
           "network": {"meta": {"physical_network": "physnet9"}}}
    with pytest.raises(nova_exception.MigrationPreCheckError,
                       match="SR-IOV ports: "):
        plugin.prepare_incoming_migration(inst, [vif], {vif["id"]: 0})
    with pytest.raises(nova_exception.MigrationPreCheckError,
                       match="slots are not a dict"):
        plugin.prepare_incoming_migration(inst, [vif], None)
    assert plugin.agent.allocations() == []


def test_an_allocation_on_another_hosts_provider_is_refused(plugin):
    # The port's request names a provider that is not this host's (the
    # scheduler's choice was for another host): nova reschedules, or
    # tries another destination; nothing is claimed here.
    plugin.update_provider_tree(NovaProviderTree("h"), "h")
    elsewhere = str(uuid.uuid4())
    allocations = {elsewhere: {"resources": {"CUSTOM_PCI_8086_154C": 1}}}
    request = pci_request()
    request.spec[0]["rp_uuids"] = elsewhere
    inst = instance()
    with pytest.raises(nova_exception.ComputeResourcesUnavailable,
                       match="names 0 PF providers of this host"):
        plugin.claim_instance(inst, [request], "h", allocations)
    vif = {"id": request.requester_id, "address": "fa:16:3e:00:00:01",
           "vnic_type": "macvtap", "profile": {}, "details": {},
           "network": {"meta": {"physical_network": "physnet1"}}}
    inst.pci_requests = types.SimpleNamespace(requests=[request])
    with pytest.raises(nova_exception.MigrationPreCheckError,
                       match="names 0 PF providers of this host"):
        plugin.prepare_incoming_migration(
            inst, [vif], {request.requester_id: 0}, allocations)
    assert plugin.agent.allocations() == []
