"""The whole loop on real parts: two real libvirt hosts (veth pairs as
VFs) reported to one real Placement; an instance scheduled through
Placement boots on A from the PF Placement allocated, then live-migrates
to B as Nova does it (the source's units moved to the migration's
consumer, the instance's allocated on B), B claiming from its allocated
PF; doctor with Placement finds nothing at every step, and at the end
Placement's usages are the ledgers'."""

import contextlib
import pathlib
import uuid
from collections.abc import Iterator

import libvirt
import pytest
from libvirt_hosts import LibvirtHost, TwoHosts

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter

pytestmark = [pytest.mark.functional, pytest.mark.placement,
              pytest.mark.two_hosts]

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
CLASS = "CUSTOM_PCI_8086_154C"


class Host:
    """One real libvirt host as the library and Placement see it."""

    def __init__(self, host: LibvirtHost, workdir: pathlib.Path,
                 nodename: str, pf: str, netdevs: tuple[str, ...],
                 client) -> None:
        self.host = host
        self.nodename = nodename
        self.client = client
        st.build_tree(workdir / "sys", st.HostLayout((st.PfLayout(
            "intel-x710", pf, numvfs=len(netdevs),
            netdev=f"pf{host.name}", vf_netdevs=netdevs),)))
        self.conf = host_conf(workdir, device_specs=SPECS, flavors=FLAVORS,
                              libvirt_uri=host.uri)
        self.conf.set_override("nodename", nodename,
                               group="pci_passthrough")
        # nova-compute makes the root provider; the library the rest.
        client.post("/resource_providers", {"name": nodename})
        self.agent = HostAgent(self.conf)
        self.agent.start()
        self.sync()

    def sync(self):
        report = host_view(self.conf).sync(Reporter(self.client),
                                           create_root=False)
        self.agent.use_placement_providers(self.nodename,
                                           report.provider_uuids)
        self.root = report.root_uuid
        self.providers = report.provider_uuids
        return report

    def candidate(self, count: int) -> tuple[dict, list[str]]:
        """The scheduler's pick on this host: the allocation request and
        the provider of each port."""
        (query,) = self.agent.request_groups("net1", count)
        body = self.client.get(f"/allocation_candidates?{query}").body
        mine = set(self.providers.values())
        choice = next(c for c in body["allocation_requests"]
                      if set(c["allocations"]) <= mine)
        return choice["allocations"], [
            choice["mappings"][f"_pci{i}"][0] for i in range(count)]

    def usage(self) -> int:
        rps = self.client.get(f"/resource_providers?in_tree={self.root}"
                              ).body["resource_providers"]
        return sum(self.client.get(f"/resource_providers/{rp['uuid']}/"
                                   f"usages").body["usages"].get(CLASS, 0)
                   for rp in rps)

    def placement_findings(self) -> list[tuple[str, str]]:
        return [(f.kind.value, f.subject) for f in
                self.agent.doctor(placement=self.client).findings]

    def macvtap_links(self) -> list[str]:
        return sorted(m["link"] for m in self.host.macvtaps())


@pytest.fixture
def hosts(two_hosts: TwoHosts, tmp_path, client, nodename
          ) -> Iterator[tuple[Host, Host]]:
    a = Host(two_hosts.a, tmp_path / "a", nodename(), "0000:3b:00.0",
             ("vfa0", "vfa1", "vfa2", "vfa3"), client)
    b = Host(two_hosts.b, tmp_path / "b", nodename(), "0000:af:00.0",
             ("vfb0", "vfb1", "vfb2"), client)
    yield a, b
    for side in (a, b):
        conn = side.host.connect()
        try:
            for dom in conn.listAllDomains(0):
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
        finally:
            conn.close()
        for alloc in side.agent.allocations():
            side.agent.release(alloc.instance_uuid)
        side.agent.close()


def put(client, consumer: str, allocations: dict, kind: str) -> None:
    body = client.get(f"/allocations/{consumer}").body
    client.put(f"/allocations/{consumer}", {
        "allocations": {rp: {"resources": a["resources"]}
                        for rp, a in allocations.items()},
        "project_id": "p", "user_id": "u",
        "consumer_generation": body.get("consumer_generation"),
        "consumer_type": kind}, expect=(204,))


def ports() -> list[PortRequest]:
    return [PortRequest(i, flavor="net1", mac=f"52:54:00:00:40:0{i}")
            for i in range(2)]


def test_schedule_boot_migrate_release_through_placement(
        hosts, two_hosts, client) -> None:
    a, b = hosts
    instance = str(uuid.uuid4())
    name = f"guest-{instance[:8]}"
    # Scheduled on A: Placement's allocation, then A's claim from it.
    allocations, per_port = a.candidate(2)
    put(client, instance, allocations, "INSTANCE")
    a.agent.claim(instance, ports(), allocation=dict(enumerate(per_port)))
    plugged = a.agent.plug(instance)
    conn = a.host.connect()
    try:
        conn.createXML(guest_xml(name, [p.interface_xml for p in plugged]),
                       0)
    finally:
        conn.close()
    assert a.placement_findings() == [] and b.placement_findings() == []
    assert (a.usage(), b.usage()) == (2, 0)

    # Live migration to B, as Nova moves the allocations: in one write,
    # A's units to the migration's consumer, the instance's to B.
    migration = str(uuid.uuid4())
    dest, dest_ports = b.candidate(2)
    source = client.get(f"/allocations/{instance}").body
    client.post("/allocations", {
        migration: {"allocations": {rp: {"resources": x["resources"]}
                                    for rp, x in
                                    source["allocations"].items()},
                    "project_id": "p", "user_id": "u",
                    "consumer_generation": None,
                    "consumer_type": "MIGRATION"},
        instance: {"allocations": {rp: {"resources": x["resources"]}
                                   for rp, x in dest.items()},
                   "project_id": "p", "user_id": "u",
                   "consumer_generation": source["consumer_generation"],
                   "consumer_type": "INSTANCE"}}, expect=(204,))
    a.agent.begin_outgoing_migration(instance)
    b.agent.prepare_incoming_migration(
        instance, ports(), allocation=dict(enumerate(dest_ports)))
    # Mid-migration both hosts agree with Placement.
    assert a.placement_findings() == [] and b.placement_findings() == []
    assert (a.usage(), b.usage()) == (2, 2)
    two_hosts.migrate(name, two_hosts.a, two_hosts.b)
    b.agent.complete_incoming_migration(instance)
    a.agent.complete_outgoing_migration(instance)
    # Nova drops the migration's allocation once it is confirmed.
    put(client, migration, {}, "MIGRATION")
    assert a.placement_findings() == [] and b.placement_findings() == []
    assert (a.usage(), b.usage()) == (0, 2)
    assert a.macvtap_links() == []
    assert b.macvtap_links() == sorted(
        x.netdev or "" for x in b.agent.allocations(instance))
    # A periodic sync of either host changes nothing.
    assert not a.sync().changed and not b.sync().changed

    # Destroyed on B: networks, claims and allocation gone.
    conn = b.host.connect()
    try:
        conn.lookupByName(name).destroy()
    finally:
        conn.close()
    b.agent.release(instance)
    put(client, instance, {}, "INSTANCE")
    assert a.placement_findings() == [] and b.placement_findings() == []
    assert (a.usage(), b.usage()) == (0, 0)
    assert b.macvtap_links() == []
