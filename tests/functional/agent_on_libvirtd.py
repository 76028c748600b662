"""The host a HostAgent serves on a real libvirtd (functional tier): an
Intel X710 PF whose two VFs' netdevs are the host's VF stand-ins vfa0
and vfa1 (the ``host_a`` fixture's veths), one physnet1 device_spec and
the net1 flavor, the ledger in the test's folder.

Imported by name by test_agent_real.py and test_doctor_real.py."""

import pathlib

import libvirt_hosts
from oslo_config import cfg

from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.simulated_host import host_conf

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
LAYOUT = st.HostLayout((st.PfLayout(
    "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0",
    vf_netdevs=("vfa0", "vfa1")),))


def agent_conf(host: libvirt_hosts.LibvirtHost,
               workdir: pathlib.Path) -> cfg.ConfigOpts:
    """Build the sysfs tree in ``workdir``/sys and return the
    configuration of an agent on it that talks to ``host``'s libvirtd."""
    st.build_tree(workdir / "sys", LAYOUT)
    return host_conf(workdir, device_specs=SPECS, flavors=FLAVORS,
                     libvirt_uri=host.uri)
