"""The live migration on two real libvirt daemons (root only), each in
its own network namespace, with veths standing in for VFs. Every step
prints the live domain and network XML of both hosts; everything is torn
down at the end, and the run fails if anything was left behind.

    sudo .venv/bin/tox -e demo-real-hosts
    python tools/demo_real_hosts.py      # as root, in the virtualenv

It needs the functional tests' host fixture (tests/functional/
libvirt_hosts.py), which is test code and not part of the installed
package: so this demo is a script of the repository, not a subcommand.
"""

import pathlib
import sys
import time
import uuid
from collections.abc import Callable

import libvirt
from lxml import etree

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.model.claims import PortRequest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]
                       / "tests" / "functional"))
from libvirt_hosts import (
    HostRun,
    LibvirtHost,
    TwoHosts,
    missing_requirements,
)

Say = Callable[[str], None]
SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
VFS = {"a": ("vfa0", "vfa1", "vfa2"), "b": ("vfb0", "vfb1")}


def _show(host: LibvirtHost, domain: str | None, say: Say) -> None:
    conn = host.connect()
    try:
        if domain is not None:
            try:
                xml = etree.fromstring(conn.lookupByName(domain).XMLDesc(0))
            except libvirt.libvirtError:
                say(f"  host {host.name.upper()}: no domain {domain}")
            else:
                for iface in xml.iterfind("devices/interface"):
                    text = etree.tostring(iface, encoding="unicode")
                    say(f"  host {host.name.upper()} live interface: "
                        + " ".join(text.split()))
        nets = [n for n in conn.listAllNetworks(0)
                if n.name().startswith("pcipt-")]
        if not nets:
            say(f"  host {host.name.upper()}: no per-instance network")
        for net in nets:
            say(f"  host {host.name.upper()} network: "
                + " ".join(net.XMLDesc(0).split()))
        taps = ", ".join(f"{m['ifname']}@{m['link']}"
                         for m in host.macvtaps()) or "none"
        say(f"  host {host.name.upper()} macvtaps: {taps}")
    finally:
        conn.close()


def run_real_demo(say: Say = print) -> int:
    """Tell the story; 0 when it ran and left nothing behind."""
    missing = missing_requirements()
    if missing:
        say("the real-hosts demo cannot run here: " + ", ".join(missing))
        return 2
    run = HostRun(prefix="pcipt-demo-")
    try:
        hosts = run.new_two_hosts(VFS["a"], VFS["b"])
        say("== Step 1: two real libvirt hosts, each in its own network "
            "namespace")
        with hosts:
            for what, took in hosts.timings.items():
                say(f"  {what}: {took:.2f} s")
            _story(hosts, run.workdir, say)
        left = run.leftovers()
    finally:
        left_after = run.close()
    say("\n== Step 7: teardown")
    left += [x for x in left_after if x not in left]
    say("  left behind: " + ("; ".join(left) if left else
                             "nothing (no daemon, namespace, link, /dev/tap "
                             "file or folder)"))
    return 1 if left else 0


def _story(hosts: TwoHosts, workdir: pathlib.Path, say: Say) -> None:
    agents = {}
    for host, pf in ((hosts.a, "0000:3b:00.0"), (hosts.b, "0000:af:00.0")):
        root = workdir / f"agent-{host.name}"
        st.build_tree(root / "sys", st.HostLayout((st.PfLayout(
            "intel-x710", pf, numvfs=len(VFS[host.name]),
            netdev=f"pf{host.name}", vf_netdevs=VFS[host.name]),)))
        agent = HostAgent(host_conf(root, device_specs=SPECS,
                                    flavors=FLAVORS, libvirt_uri=host.uri))
        agent.start()
        agents[host.name] = agent
    a, b = agents["a"], agents["b"]
    try:
        inst = str(uuid.uuid4())
        name = f"guest-{inst[:8]}"
        ports = [PortRequest(i, flavor="net1", mac=f"52:54:00:00:40:0{i}")
                 for i in range(2)]
        say("\n== Step 2: boot a TCG guest on A with two ports")
        a.claim(inst, ports)
        plugged = a.plug(inst)
        conn = hosts.a.connect()
        started = time.monotonic()
        conn.createXML(guest_xml(name, [p.interface_xml for p in plugged]),
                       0)
        conn.close()
        say(f"  guest started in {time.monotonic() - started:.2f} s")
        _show(hosts.a, name, say)
        _show(hosts.b, name, say)

        say("\n== Step 3: prepare_incoming_migration on B")
        b.prepare_incoming_migration(inst, ports)
        _show(hosts.b, None, say)

        say("\n== Step 4: live migration A -> B (libvirt, peer to peer)")
        took = hosts.migrate(name, hosts.a, hosts.b)
        b.complete_incoming_migration(inst)
        a.complete_outgoing_migration(inst)
        say(f"  migrated in {took:.2f} s; complete_incoming_migration on "
            f"B and complete_outgoing_migration on A done")
        hosts.assert_qemu_holds_own_macvtap(hosts.b, name)
        _show(hosts.a, name, say)
        _show(hosts.b, name, say)

        say("\n== Step 5: a second guest with two ports cannot follow (B "
            "has no free VF left)")
        other = str(uuid.uuid4())
        a.claim(other, ports)
        a.plug(other)
        try:
            b.prepare_incoming_migration(other, ports)
        except exception.MigrationRefused as exc:
            say(f"  refused before migrating: {exc}")
        a.release(other)

        say("\n== Step 6: release on B: both hosts empty")
        conn = hosts.b.connect()
        conn.lookupByName(name).destroy()
        conn.close()
        b.release(inst)
        _show(hosts.a, None, say)
        _show(hosts.b, None, say)
    finally:
        a.close()
        b.close()


if __name__ == "__main__":
    sys.exit(run_real_demo())
