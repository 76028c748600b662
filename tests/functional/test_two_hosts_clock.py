"""A live migration between two real libvirt hosts whose destination's
wall clock is stepped two hours forward right after
prepare_incoming_migration: the lease holds (timed on the boot clock,
then kept by the incoming domain libvirt shows), the migration
completes, and the migrated guest's VFs are never handed out again."""

import contextlib
import pathlib
import uuid
from collections.abc import Iterator

import libvirt
import pytest
from libvirt_hosts import LibvirtHost, TwoHosts
from lxml import etree

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import Clock
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf

pytestmark = [pytest.mark.functional, pytest.mark.two_hosts]

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
TIMEOUT = 1800
PORTS = [PortRequest(i, flavor="net1", mac=f"52:54:00:00:31:0{i}")
         for i in range(2)]


def agent_on(host: LibvirtHost, workdir: pathlib.Path, pf_address: str,
             netdevs: tuple[str, ...], clock: Clock | None) -> HostAgent:
    """A started agent on the host's daemon, over a sysfs tree naming
    the host's VF stand-ins; ``clock``: the host's own when None."""
    st.build_tree(workdir / "sys", st.HostLayout((st.PfLayout(
        "intel-x710", pf_address, numvfs=len(netdevs),
        netdev=f"pf{host.name}", vf_netdevs=netdevs),)))
    conf = host_conf(workdir, device_specs=SPECS, flavors=FLAVORS,
                     libvirt_uri=host.uri)
    agent = (HostAgent(conf) if clock is None
             else HostAgent(conf, clock=clock))
    agent.start()
    return agent


@contextlib.contextmanager
def connected(host: LibvirtHost) -> Iterator[libvirt.virConnect]:
    conn = host.connect()
    try:
        yield conn
    finally:
        conn.close()


def boot(host: LibvirtHost, agent: HostAgent, inst: str) -> str:
    """The instance booted on the host, its domain's UUID the
    instance's, as nova defines it; the domain's name."""
    name = f"guest-{inst[:8]}"
    agent.claim(inst, PORTS)
    plugged = agent.plug(inst)
    dom = etree.fromstring(guest_xml(
        name, [p.interface_xml for p in plugged]))
    etree.SubElement(dom, "uuid").text = inst
    with connected(host) as conn:
        conn.createXML(etree.tostring(dom, encoding="unicode"), 0)
    return name


def running_on(host: LibvirtHost, name: str) -> bool:
    with connected(host) as conn:
        try:
            return conn.lookupByName(name).isActive() == 1
        except libvirt.libvirtError:
            return False


def test_a_clock_step_on_the_destination_keeps_the_lease(
        two_hosts: TwoHosts, tmp_path: pathlib.Path) -> None:
    clock = Clock()
    a = agent_on(two_hosts.a, tmp_path / "a", "0000:3b:00.0",
                 ("vfa0", "vfa1"), None)
    b = agent_on(two_hosts.b, tmp_path / "b", "0000:af:00.0",
                 ("vfb0", "vfb1", "vfb2"), clock)
    inst, nxt = str(uuid.uuid4()), str(uuid.uuid4())
    name = f"guest-{inst[:8]}"
    try:
        boot(two_hosts.a, a, inst)
        a.begin_outgoing_migration(inst)
        held = {p.address for p in b.prepare_incoming_migration(
            inst, PORTS)}
        clock.now += 1
        clock.step(2 * 3600)
        assert b.refresh().expired_leases == ()
        assert {x.state for x in b.allocations(inst)} == {"incoming"}
        two_hosts.migrate(name, two_hosts.a, two_hosts.b)
        # Past its time on every clock, the lease holds while the guest
        # runs here.
        clock.now += 2 * TIMEOUT
        assert b.refresh().expired_leases == ()
        # Kept, and said; --fix leaves it.
        assert [(f.kind.value, f.fixed) for f in
                b.doctor(fix=True).findings] == [("lease-overdue", False)]
        assert {x.address for x in b.complete_incoming_migration(inst)
                } == held
        a.complete_outgoing_migration(inst)
        assert running_on(two_hosts.b, name)
        two_hosts.assert_qemu_holds_own_macvtap(two_hosts.b, name)
        (next_claim,) = b.claim(nxt, PORTS[:1])
        assert next_claim.address not in held
        assert b.doctor().findings == ()
    finally:
        for host, agent in ((two_hosts.a, a), (two_hosts.b, b)):
            with connected(host) as conn, \
                    contextlib.suppress(libvirt.libvirtError):
                conn.lookupByName(name).destroy()
            for gone in (inst, nxt):
                agent.release(gone)
            agent.close()
