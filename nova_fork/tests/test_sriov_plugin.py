"""The pci_passthrough library as the libvirt driver's SR-IOV port plugin.

Each compute runs nova's libvirt driver on fakelibvirt, as nova's own
libvirt functional tests do, with ``[sriov_plugin] enabled``: the driver
loads the library's plugin through its entry point and starts the host's
HostAgent from init_host.

Each compute is a host of its own for the library: a sysfs tree written
by ``pci_passthrough.fixtures.sysfs_tree`` in a folder of its own
(``[pci_passthrough] sysfs_root``), its own ledger (``state_path``) and
its own libvirt. fakelibvirt has no network API, and nova's fixtures
patch only the libvirt modules of nova's driver; the library imports
libvirt-python itself and opens its own connection, which its option
``[pci_passthrough] libvirt_uri`` names. Each compute's points at
libvirt's test driver on a file of its own (``test:///<dir>/libvirt.xml``,
a separate state per file), so the harness stays as it is: fakelibvirt
remains the hypervisor nova's driver sees, and the test driver holds the
library's networks, as qemu:///system would on a real host.

All computes of a test share nova's one configuration. The library reads
its options once, when the plugin's init_host creates the agent, so
start_compute sets the host's options just before starting it.
"""

import os

import fixtures
from nova import conf, exception
from nova.tests.functional.libvirt import base

from pci_passthrough.config import opts as pci_opts
from pci_passthrough.fixtures import sysfs_tree
from pci_passthrough.fixtures.simulated_host import libvirt_test_uri
from pci_passthrough.nova.sriov_plugin import SriovPlugin

CONF = conf.CONF

#: The physical network of the Neutron fixture's macvtap ports
#: (its network_2).
PHYSNET = "physnet2"
DEVICE_SPEC = (
    f'{{"vendor_id": "8086", "physical_network": "{PHYSNET}"}}')
FLAVOR = (
    f'{{"name": "macvtap", "physical_network": "{PHYSNET}", '
    f'"device_type": "type-VF"}}')
#: Each compute's SR-IOV NICs.
LAYOUTS = {
    "compute1": sysfs_tree.HostLayout((
        sysfs_tree.PfLayout("intel-e810", "0000:5e:00.0", numvfs=4,
                            netdev="ens1f0"),)),
    "compute2": sysfs_tree.HostLayout((
        sysfs_tree.PfLayout("intel-x710", "0000:3b:00.0", numvfs=2,
                            netdev="ens2f0"),)),
}


class SriovPluginTestBase(base.ServersTestBase):
    """Computes whose libvirt driver runs the library's plugin."""

    def setUp(self):
        super().setUp()
        pci_opts.register_opts(CONF)
        self.flags(enabled=True, group="sriov_plugin")
        self.flags(device_spec=[DEVICE_SPEC], flavor=[FLAVOR],
                   group="pci_passthrough")
        self.host_dirs = {}
        self.trees = {}
        #: Each host's libvirt URI (the library's networks).
        self.libvirt_uris = {}
        self._workdir = self.useFixture(fixtures.TempDir()).path

    def start_compute(self, hostname="compute1", *args, **kwargs):
        """Start the compute with its own sysfs tree, ledger and libvirt
        (kept across restarts, as a host keeps them)."""
        host_dir = self.host_dirs.get(hostname)
        if host_dir is None:
            host_dir = os.path.join(self._workdir, hostname)
            os.mkdir(host_dir)
            self.trees[hostname] = sysfs_tree.build_tree(
                os.path.join(host_dir, "sys"), LAYOUTS[hostname])
            self.host_dirs[hostname] = host_dir
        self.libvirt_uris[hostname] = libvirt_test_uri(
            os.path.join(host_dir, "libvirt.xml"))
        self.flags(
            sysfs_root=os.path.join(host_dir, "sys"),
            state_path=os.path.join(host_dir, "claims.sqlite3"),
            libvirt_uri=self.libvirt_uris[hostname],
            group="pci_passthrough")
        hostname = super().start_compute(hostname, *args, **kwargs)
        plugin = self.plugin(hostname)
        # A test's end kills its services without stopping them.
        self.addCleanup(plugin.cleanup_host, hostname)
        return hostname

    def plugin(self, hostname):
        plugin = self.computes[hostname].driver.sriov_plugin
        self.assertIsInstance(plugin, SriovPlugin)
        return plugin

    def agent(self, hostname):
        agent = self.plugin(hostname).agent
        self.assertIsNotNone(agent, f"{hostname} has no started agent")
        return agent


class SriovPluginStartTest(SriovPluginTestBase):

    def test_agents_start_with_the_computes(self):
        self.start_compute("compute1")
        self.start_compute("compute2")

        agents = {host: self.agent(host) for host in LAYOUTS}
        self.assertIsNot(agents["compute1"], agents["compute2"])
        for host, agent in agents.items():
            # Each agent scanned its own host's tree: every PF and VF of
            # it matches the device spec and is free.
            self.assertEqual(
                {address: "available" for address in self.trees[host].devices},
                agent.device_states())
            self.assertEqual([], agent.allocations())
            self.assertTrue(os.path.isfile(
                os.path.join(self.host_dirs[host], "claims.sqlite3")))
            # Its ledger and its libvirt networks agree, with nothing
            # left over from a previous life.
            self.assertEqual((), agent.doctor().findings)

    def test_restarted_compute_starts_a_new_agent_on_its_ledger(self):
        self.start_compute("compute1")
        old_plugin = self.plugin("compute1")
        old_agent = self.agent("compute1")

        self.restart_compute_service("compute1")

        # The stopped driver closed its agent: the ledger is released.
        self.assertIsNone(old_plugin.agent)
        agent = self.agent("compute1")
        self.assertIsNot(old_agent, agent)
        self.assertEqual(
            {address: "available"
             for address in self.trees["compute1"].devices},
            agent.device_states())

    def test_compute_does_not_start_without_its_plugin(self):
        self.flags(driver="no_such_plugin", group="sriov_plugin")

        exc = self.assertRaises(exception.InvalidConfiguration,
                                self.start_compute, "compute1")

        self.assertIn("[sriov_plugin] driver no_such_plugin is not an "
                      "entry point of namespace "
                      "nova.virt.libvirt.sriov_plugin", str(exc))
        self.assertNotIn("compute1", self.computes)
