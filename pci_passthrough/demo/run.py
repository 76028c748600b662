"""pci-passthrough demo: the library's story on embedded defaults.

Two simulated compute hosts, each a shipped sysfs layout written to a
temporary folder and libvirt's test driver (real libvirt code, no
daemon): discovery, flavors with a special attribute, explain, a boot on
host A with two ports, a live migration to B with the domain XML
unchanged, doctor finding and repairing a network an operator changed
by hand, a burst of migrations B cannot all take, and a release that
leaves both hosts empty.

The same migration on two real libvirt daemons is a script of the
repository (tools/demo_real_hosts.py, ``tox -e demo-real-hosts``): it
needs the functional tests' host fixture, which is not installed.
"""

import io
import logging as std_logging
import pathlib
import tempfile
import uuid
from collections.abc import Callable

import libvirt
from lxml import etree
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.cli.scan import print_scan_table, scan_report
from pci_passthrough.config import devspec
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import simulated_host
from pci_passthrough.fixtures.sysfs_tree import HostLayout
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

Say = Callable[[str], None]


class _Host:
    """A simulated host: its agent and the libvirt connection it uses."""

    def __init__(self, name: str, workdir: pathlib.Path,
                 layout: HostLayout) -> None:
        self.name = name
        self.conf, self.tree = simulated_host(
            workdir, layout, device_specs=demo_hosts.DEMO_DEVICE_SPECS,
            flavors=demo_hosts.DEMO_FLAVORS)
        # The test driver keeps one state per connection: the agent and
        # the demo share it, as a compute driver shares its connection.
        self.conn = libvirt.open(self.conf.pci_passthrough.libvirt_uri)
        self.agent = HostAgent(self.conf, network_driver=LibvirtMacvtapDriver(
            self.conf, connection=self.conn))

    def networks(self) -> list[str]:
        return sorted(n.name() for n in self.conn.listAllNetworks(0)
                      if n.name().startswith("pcipt-"))

    def show_networks(self, say: Say) -> None:
        names = self.networks()
        if not names:
            say(f"  host {self.name}: no per-instance network")
        for name in names:
            xml = self.conn.networkLookupByName(name).XMLDesc(0)
            say(f"  host {self.name}: " + _indent(xml).lstrip())

    def close(self) -> None:
        self.agent.close()
        self.conn.close()


def _indent(xml: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in xml.strip().splitlines())


class _Steps:
    def __init__(self, say: Say) -> None:
        self.say = say
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        self.say(f"\n== Step {self.number}: {title}")


def run_demo(workdir: pathlib.Path, say: Say = print) -> None:
    step = _Steps(say)
    step("two simulated compute hosts (sysfs trees + libvirt test driver)")
    a = _Host("A", workdir / "host-a", demo_hosts.DEMO_HOST_A)
    b = _Host("B", workdir / "host-b", demo_hosts.DEMO_HOST_B)
    try:
        _story(a, b, step, say)
    finally:
        a.close()
        b.close()
    step("fleet scheduling: both hosts reported to an in-process Placement")
    _placement_step(workdir / "placement", say)


def _placement_step(workdir: pathlib.Path, say: Say) -> None:
    # Imported here: the Placement step needs neither libvirt nor the
    # hosts above, and its server is an optional extra.
    from pci_passthrough.demo.placement_step import run_placement_demo

    out = io.StringIO()
    # Without the server it says so itself and returns None.
    run_placement_demo(workdir, out)
    for line in out.getvalue().splitlines():
        say(line)


def _story(a: _Host, b: _Host, step: _Steps, say: Say) -> None:
    for host in (a, b):
        say(f"host {host.name}: {len(host.tree.pfs)} PFs, "
            f"{len(host.tree.vfs)} VFs under {host.tree.root}")

    step("the operator's configuration (Nova's formats)")
    for text in demo_hosts.DEMO_DEVICE_SPECS:
        say(f"  device_spec = {text}")
    for text in demo_hosts.DEMO_FLAVORS:
        say(f"  flavor = {text}")
    say("  special_attributes = group")

    step("discovery on host A: one pass over sysfs")
    a.agent.start()
    b.agent.start()
    report = scan_report(sysfs_scan.scan(a.conf.pci_passthrough.sysfs_root),
                         devspec.parse_device_specs(
                             demo_hosts.DEMO_DEVICE_SPECS))
    print_scan_table(report)

    step("special attributes: explain which devices serve a flavor")
    for flavor in ("mlx", "grp1"):
        result = a.agent.explain(flavor)
        say(f"  flavor {flavor}: satisfiable={result.satisfiable}")
        for dev in result.devices:
            verdict = "MATCH" if dev.match else "no   "
            say(f"    {dev.address}  {verdict}  {dev.reason or ''}"
                .rstrip())
    say("  The group=grp1 VFs never serve mlx, which does not name group.")

    step("a mistyped device_spec is refused, naming the entry")
    try:
        devspec.parse_device_specs(['{"address": "0000:3b:02.8"}'])
    except exception.InvalidDeviceSpec as exc:
        say(f"  {exc}")

    step("boot on host A with two ports (net1 and grp1)")
    inst = str(uuid.uuid4())
    ports = [PortRequest(0, flavor="net1", mac="52:54:00:00:10:01"),
             PortRequest(1, flavor="grp1", mac="52:54:00:00:10:02")]
    for alloc in a.agent.claim(inst, ports):
        say(f"  port {alloc.port_index}: {alloc.address} "
            f"(netdev {alloc.netdev})")
    plugged = a.agent.plug(inst)
    domain = guest_xml(f"guest-{inst[:8]}",
                       [p.interface_xml for p in plugged])
    a.conn.defineXML(domain).create()
    say("  domain interfaces (they name networks, not devices):")
    for iface in etree.fromstring(domain).iterfind("devices/interface"):
        say(_indent(etree.tostring(iface, encoding="unicode")))
    a.show_networks(say)
    b.show_networks(say)

    step("live migration A -> B, the domain XML unchanged")
    a.agent.begin_outgoing_migration(inst)
    b.agent.prepare_incoming_migration(inst, ports)
    say("  after prepare_incoming_migration on B, same names on both "
        "hosts, each holding its own VF:")
    a.show_networks(say)
    b.show_networks(say)
    # The test driver has no migration API: B starts the same XML.
    b.conn.defineXML(domain).create()
    dom_a = a.conn.lookupByName(f"guest-{inst[:8]}")
    dom_a.destroy()
    dom_a.undefine()
    b.agent.complete_incoming_migration(inst)
    a.agent.complete_outgoing_migration(inst)
    say("  after complete_incoming_migration on B and "
        "complete_outgoing_migration on A:")
    a.show_networks(say)
    b.show_networks(say)

    step("doctor: an operator rewrote a network on B by hand")
    _tamper(b, b.agent.network_name(inst, 0))
    _doctor(b, say, fix=False)
    _doctor(b, say, fix=True)
    _doctor(b, say, fix=False)

    step("a burst of migrations larger than B can take")
    burst = [str(uuid.uuid4()) for _ in range(3)]
    port = [PortRequest(0, flavor="net1")]
    for other in burst:
        a.agent.claim(other, port)
        a.agent.plug(other)
    say(f"  {len(burst)} more instances with a net1 port run on A; B can "
        f"serve net1 {_capacity(b, 'net1')} more time(s)")
    moved = []
    for other in burst:
        try:
            b.agent.prepare_incoming_migration(other, port)
        except exception.MigrationRefused as exc:
            say(f"  refused before migrating: {exc}")
            continue
        a.agent.complete_outgoing_migration(other)
        moved.append(other)
        say(f"  instance {other} moved to B")
    say(f"  claims on B: {len(b.agent.allocations())}, on A: "
        f"{len(a.agent.allocations())} (the refused instance stays on A)")

    step("release everything: both hosts empty")
    b.conn.lookupByName(f"guest-{inst[:8]}").destroy()
    for host, instances in ((b, [inst, *moved]),
                            (a, [x for x in burst if x not in moved])):
        for x in instances:
            host.agent.release(x)
    for host in (a, b):
        say(f"  host {host.name}: {len(host.networks())} networks, "
            f"{len(host.agent.allocations())} claims")


def _tamper(host: _Host, name: str) -> None:
    """Redefine the network holding another netdev, as a hand edit
    through virsh would."""
    net = host.conn.networkLookupByName(name)
    net.destroy()
    net.undefine()
    host.conn.networkDefineXML(
        f"<network><name>{name}</name><forward mode='bridge'>"
        f"<interface dev='eth0'/></forward></network>")


def _doctor(host: _Host, say: Say, fix: bool) -> None:
    report = host.agent.doctor(fix=fix)
    say(f"  pci-passthrough doctor{' --fix' if fix else ''} on host "
        f"{host.name}: {len(report.findings)} finding(s), "
        f"{len(report.left)} left")
    for f in report.findings:
        status = "fixed" if f.fixed else "found"
        say(f"    [{status}] {f.kind.value} {f.subject}: {f.problem}; "
            f"repair: {f.repair}")


def _capacity(host: _Host, flavor: str) -> int:
    count = 0
    while host.agent.explain(flavor, count=count + 1).satisfiable:
        count += 1
    return count


def run(conf: cfg.ConfigOpts) -> int:
    # The command is the process: libvirt's own stderr lines (a network
    # that exists, which the driver then converges) are noise here.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    if not conf.debug:
        # The story is told on stdout; the library's INFO lines would
        # repeat it (--debug shows them).
        std_logging.getLogger("pci_passthrough").setLevel(
            std_logging.WARNING)
    if conf.command.workdir:
        workdir = pathlib.Path(conf.command.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        run_demo(workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="pci-passthrough-demo-") as tmp:
        run_demo(pathlib.Path(tmp))
    return 0
