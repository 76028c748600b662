"""A simulated host for the Placement tests: demo host A's sysfs tree
in a folder of its own, the demo's device_spec and flavors, the noop
network driver, and its own node name."""

import pathlib

from oslo_config import cfg

from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.simulated_host import host_conf


def agent_host(workdir: pathlib.Path, nodename: str) -> cfg.ConfigOpts:
    st.build_tree(workdir / "sys", demo_hosts.DEMO_HOST_A)
    conf = host_conf(workdir, device_specs=demo_hosts.DEMO_DEVICE_SPECS,
                     flavors=demo_hosts.DEMO_FLAVORS,
                     network_driver="noop")
    conf.set_override("nodename", nodename, group="pci_passthrough")
    return conf
