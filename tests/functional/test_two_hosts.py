"""Live migration between two real libvirt hosts, driven by the library
on both: each host defines the instance's networks under the same names
holding its own VFs, so the domain XML never changes."""

import contextlib
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import libvirt
import libvirt_hosts
import pytest
from libvirt_hosts import LibvirtHost, TwoHosts

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf

pytestmark = [pytest.mark.functional, pytest.mark.two_hosts]

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
PREFIX = "pcipt-"
REPO = pathlib.Path(__file__).resolve().parents[2]


class Side:
    """One host as the library sees it: its sysfs tree naming the host's
    veths, its ledger, and a HostAgent on the host's daemon."""

    def __init__(self, host: LibvirtHost, workdir: pathlib.Path,
                 pf_address: str, netdevs: tuple[str, ...]) -> None:
        self.host = host
        self.workdir = workdir
        st.build_tree(workdir / "sys", st.HostLayout((st.PfLayout(
            "intel-x710", pf_address, numvfs=len(netdevs),
            netdev=f"pf{host.name}", vf_netdevs=netdevs),)))
        self.conf = host_conf(workdir, device_specs=SPECS, flavors=FLAVORS,
                              libvirt_uri=host.uri)
        self.agent = HostAgent(self.conf)
        self.agent.start()

    def networks(self) -> dict[str, tuple[bool, bool]]:
        """Prefixed networks: name -> (active, autostart)."""
        conn = self.host.connect()
        try:
            return {n.name(): (bool(n.isActive()), bool(n.autostart()))
                    for n in conn.listAllNetworks(0)
                    if n.name().startswith(PREFIX)}
        finally:
            conn.close()

    def macvtap_links(self) -> list[str]:
        return sorted(m["link"] for m in self.host.macvtaps())

    def claimed_netdevs(self, inst: str) -> list[str]:
        return sorted(a.netdev or "" for a in self.agent.allocations(inst))

    def domain_xml(self, name: str) -> str | None:
        conn = self.host.connect()
        try:
            return conn.lookupByName(name).XMLDesc(0)
        except libvirt.libvirtError:
            return None
        finally:
            conn.close()

    def destroy(self, name: str) -> None:
        conn = self.host.connect()
        try:
            with contextlib.suppress(libvirt.libvirtError):
                conn.lookupByName(name).destroy()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def sides(two_hosts: TwoHosts, tmp_path_factory
          ) -> Iterator[tuple[Side, Side]]:
    a = Side(two_hosts.a, tmp_path_factory.mktemp("agent-a"),
             "0000:3b:00.0", ("vfa0", "vfa1", "vfa2", "vfa3"))
    b = Side(two_hosts.b, tmp_path_factory.mktemp("agent-b"),
             "0000:af:00.0", ("vfb0", "vfb1", "vfb2"))
    yield a, b
    a.agent.close()
    b.agent.close()


@pytest.fixture
def clean(sides):
    """Every story leaves both hosts empty for the next."""
    yield
    for side in sides:
        for alloc in side.agent.allocations():
            side.destroy(f"guest-{alloc.instance_uuid[:8]}")
            side.agent.release(alloc.instance_uuid)
        assert side.networks() == {}
        assert side.agent.allocations() == []
        assert side.macvtap_links() == []


def ports(n: int) -> list[PortRequest]:
    return [PortRequest(i, flavor="net1", mac=f"52:54:00:00:30:0{i}")
            for i in range(n)]


def boot(side: Side, n_ports: int = 2) -> tuple[str, str]:
    inst = str(uuid.uuid4())
    name = f"guest-{inst[:8]}"
    side.agent.claim(inst, ports(n_ports))
    plugged = side.agent.plug(inst)
    conn = side.host.connect()
    try:
        conn.createXML(guest_xml(name, [p.interface_xml for p in plugged]),
                       0)
    finally:
        conn.close()
    return inst, name


def network_names(xml: str) -> list[str]:
    from lxml import etree

    return sorted(i.find("source").get("network")
                  for i in etree.fromstring(xml).iterfind(
                      "devices/interface"))


def test_1_boot_gives_macvtaps_on_exactly_the_claimed_vfs(sides, clean):
    a, _ = sides
    inst, _ = boot(a)
    assert a.macvtap_links() == a.claimed_netdevs(inst)
    assert len(a.macvtap_links()) == 2
    assert set(a.networks().values()) == {(True, True)}


def test_2_live_migration_a_to_b(sides, two_hosts, clean):
    a, b = sides
    inst, name = boot(a)
    before = network_names(a.domain_xml(name) or "")
    a.agent.begin_outgoing_migration(inst)
    b.agent.prepare_incoming_migration(inst, ports(2))
    assert {x.state for x in b.agent.allocations(inst)} == {"incoming"}
    took = two_hosts.migrate(name, two_hosts.a, two_hosts.b)
    b.agent.complete_incoming_migration(inst)
    a.agent.complete_outgoing_migration(inst)
    assert {x.state for x in b.agent.allocations(inst)} == {"plugged"}
    assert b.agent.doctor().findings == ()
    print(f"\nlive migration A -> B: {took:.2f} s")
    # On B: the guest runs with macvtaps on B's claimed VFs.
    assert b.macvtap_links() == b.claimed_netdevs(inst)
    assert set(b.macvtap_links()) <= {"vfb0", "vfb1", "vfb2"}
    two_hosts.assert_qemu_holds_own_macvtap(two_hosts.b, name)
    # The migrated domain XML still names the same networks.
    assert network_names(b.domain_xml(name) or "") == before
    # On A: no network, no claim, no macvtap.
    assert a.networks() == {} and a.agent.allocations() == []
    assert a.macvtap_links() == [] and a.domain_xml(name) is None


def test_3_destination_too_small_refuses_before_migrating(sides, clean):
    a, b = sides
    inst, name = boot(a, n_ports=4)  # B has three VFs
    taps_before = a.macvtap_links()
    with pytest.raises(exception.MigrationRefused) as err:
        b.agent.prepare_incoming_migration(inst, ports(4))
    assert inst in str(err.value) and "port 3" in str(err.value)
    assert b.networks() == {} and b.agent.allocations() == []
    assert a.macvtap_links() == taps_before
    assert a.domain_xml(name) is not None
    assert len(a.agent.allocations(inst)) == 4


def test_4_failed_migration_is_aborted_on_the_destination(
        sides, two_hosts, clean):
    a, b = sides
    inst, name = boot(a)
    nets_a, taps_a = a.networks(), a.macvtap_links()
    b.agent.prepare_incoming_migration(inst, ports(2))
    assert len(b.networks()) == 2
    wrong = LibvirtHost("x", pathlib.Path("/nonexistent"),
                        address="10.99.0.3")
    with pytest.raises(libvirt.libvirtError):
        two_hosts.migrate(name, two_hosts.a, wrong)
    b.agent.abort_incoming_migration(inst)
    assert b.networks() == {} and b.agent.allocations() == []
    assert a.networks() == nets_a and a.macvtap_links() == taps_a
    assert len(a.agent.allocations(inst)) == 2
    assert a.domain_xml(name) is not None


def test_5_there_and_back_again_then_release(sides, two_hosts, clean):
    a, b = sides
    inst, name = boot(a)
    b.agent.prepare_incoming_migration(inst, ports(2))
    two_hosts.migrate(name, two_hosts.a, two_hosts.b)
    a.agent.complete_outgoing_migration(inst)
    a.agent.prepare_incoming_migration(inst, ports(2))
    two_hosts.migrate(name, two_hosts.b, two_hosts.a)
    b.agent.complete_outgoing_migration(inst)
    assert a.macvtap_links() == a.claimed_netdevs(inst)
    two_hosts.assert_qemu_holds_own_macvtap(two_hosts.a, name)
    assert b.networks() == {} and b.agent.allocations() == []
    a.destroy(name)
    a.agent.release(inst)
    for side in (a, b):
        assert side.networks() == {} and side.agent.allocations() == []
        assert side.macvtap_links() == []


def test_6_daemon_restart_keeps_the_migrated_guests_networks(
        sides, two_hosts, clean):
    a, b = sides
    inst, name = boot(a)
    b.agent.prepare_incoming_migration(inst, ports(2))
    two_hosts.migrate(name, two_hosts.a, two_hosts.b)
    a.agent.complete_outgoing_migration(inst)
    nets = b.networks()
    started = time.monotonic()
    two_hosts.b.restart_daemon()
    print(f"\nrestart of B's libvirtd: {time.monotonic() - started:.2f} s")
    assert b.networks() == nets
    assert set(nets.values()) == {(True, True)}
    assert b.domain_xml(name) is not None
    fresh = HostAgent(b.conf)
    try:
        report = fresh.start()
        assert report.actions == ()
        assert [x.instance_uuid for x in fresh.allocations()] == [inst] * 2
    finally:
        fresh.close()


def test_real_hosts_demo_tells_the_story(host_run):
    # As an operator runs it (tox -e demo-real-hosts): its own hosts,
    # its own check that nothing is left behind (host_run only skips
    # where real hosts cannot run).
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo_real_hosts.py")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    after_migration = out.split("== Step 4")[1].split("== Step 5")[0]
    taps_b = [line for line in after_migration.splitlines()
              if line.startswith("  host B macvtaps:")]
    assert len(taps_b) == 1
    assert "@vfb0" in taps_b[0] and "@vfb1" in taps_b[0]
    assert "refused before migrating" in out
    assert "left behind: nothing" in out


def test_a_setup_failing_half_way_leaves_nothing(host_run):
    # "bad/name" is refused by the kernel after both namespaces and the
    # link between them exist.
    hosts = host_run.new_two_hosts(vf_netdevs_b=("bad/name",))
    with pytest.raises(libvirt_hosts.HostSetupError, match="bad/name"):
        hosts.start()
    assert hosts.a.netns_inode is not None
    assert libvirt_hosts.leftovers((hosts.a, hosts.b)) == []
