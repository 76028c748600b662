"""The setup the agent's unit tests share: a simulated sysfs host, its
libvirt test-driver connection, and HostAgents on them; a clock the test
moves; VF netdev states held in memory."""

import pathlib
from collections.abc import Sequence
from typing import Any

import libvirt

from pci_passthrough import HostAgent
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.netdevs import MemoryNetdevs
from pci_passthrough.fixtures.simulated_host import simulated_host
from pci_passthrough.netdev_state import NetdevState
from pci_passthrough.network.base import NetworkDriver
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver


class Clock:
    """Seconds since the epoch, as the test sets them (migration
    leases)."""

    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_netdevs(tree: st.BuiltTree) -> MemoryNetdevs:
    """The tree's VF netdevs, which exist nowhere, held in memory: each
    up, MTU 1500, a MAC of its own."""
    return MemoryNetdevs({
        d.netdev: NetdevState(netdev=d.netdev,
                              mac=f"02:00:00:00:00:{i:02x}", mtu=1500,
                              up=True)
        for i, d in enumerate(tree.vfs) if d.netdev})


class AgentHost:
    """A simulated host on libvirt's test driver.

    :param options: ``[pci_passthrough]`` options set over the
        simulated host's.
    """

    def __init__(self, workdir: pathlib.Path, layout: st.HostLayout,
                 specs: Sequence[str], flavors: Sequence[str],
                 **options: Any) -> None:
        self.conf, self.tree = simulated_host(
            workdir, layout, device_specs=specs, flavors=flavors)
        for name, value in options.items():
            self.conf.set_override(name, value, group="pci_passthrough")
        self.conn = libvirt.open(self.conf.pci_passthrough.libvirt_uri)
        self.agents: list[HostAgent] = []

    def new_agent(self, driver: NetworkDriver | None = None,
                  start: bool = True, **kwargs: Any) -> HostAgent:
        """A HostAgent on this host (by default on the test driver's
        connection), started unless ``start`` is False; closed with the
        host.  ``kwargs`` go to HostAgent."""
        agent = HostAgent(self.conf, network_driver=driver or
                          LibvirtMacvtapDriver(self.conf,
                                               connection=self.conn),
                          **kwargs)
        self.agents.append(agent)
        if start:
            self.report = agent.start()
        return agent

    def network_names(self, containing: str = "") -> list[str]:
        return sorted(n.name() for n in self.conn.listAllNetworks(0)
                      if containing in n.name())

    def close(self) -> None:
        # An agent a test made itself, as h.agent, is closed too;
        # closing one twice does nothing.
        made = getattr(self, "agent", None)
        extra = [made] if isinstance(made, HostAgent) else []
        for agent in [*self.agents, *extra]:
            agent.close()
        self.conn.close()
