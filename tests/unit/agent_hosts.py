"""HostAgents on a simulated compute host, for the unit tier: a
generated sysfs tree, libvirt's test driver (test:///ABS/PATH.xml, a
state of its own per host) and a ledger, built by
pci_passthrough.fixtures.simulated_host; optionally a clock the test
moves and VF netdevs whose state lives in memory.

Imported by name (``from agent_hosts import AgentHost``) by the
test_agent*.py and test_doctor.py modules next to it."""

import pathlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Self

import libvirt

from pci_passthrough import HostAgent
from pci_passthrough.agent import StartReport
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.netdevs import MemoryNetdevs
from pci_passthrough.fixtures.simulated_host import simulated_host
from pci_passthrough.hygiene import NetdevState
from pci_passthrough.network.base import NetworkDriver
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics


def new_uuid() -> str:
    """A fresh instance UUID."""
    return str(uuid.uuid4())


class Clock:
    """A clock the test moves by hand (``clock.now += 1800``): what an
    agent reads for migration leases and doctor's timestamps."""

    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_netdevs(tree: st.BuiltTree) -> MemoryNetdevs:
    """The tree's VF netdevs, which exist nowhere, held in memory: each
    up, MTU 1500, MAC 02:00:00:00:00:<its index among the VFs>."""
    return MemoryNetdevs({
        d.netdev: NetdevState(netdev=d.netdev,
                              mac=f"02:00:00:00:00:{i:02x}", mtu=1500,
                              up=True)
        for i, d in enumerate(tree.vfs) if d.netdev is not None})


class AgentHost:
    """A simulated host and the agents a test makes on it.

    ``conf`` and ``tree`` are the host's configuration and sysfs tree;
    ``conn`` is one libvirt connection shared by the test and every
    agent made here (the test driver keeps one state per connection);
    ``clock`` is what the agents read for the time (``time.time`` when
    None), ``netdevs`` the VF netdev states they see (None: the agent's
    own choice, which for a tree outside /sys touches no netdev).
    ``overrides`` are set in the [pci_passthrough] group.  close()
    closes every agent made by new_agent(), then the connection; so
    does leaving a ``with`` block on the host.
    """

    def __init__(self, workdir: pathlib.Path, layout: st.HostLayout, *,
                 device_specs: Sequence[str], flavors: Sequence[str],
                 clock: Clock | None = None, in_memory_netdevs: bool = False,
                 **overrides: object) -> None:
        self.conf, self.tree = simulated_host(
            workdir, layout, device_specs=device_specs, flavors=flavors)
        for name, value in overrides.items():
            self.conf.set_override(name, value, group="pci_passthrough")
        self.conn = libvirt.open(self.conf.pci_passthrough.libvirt_uri)
        self.clock = clock
        self.netdevs = (memory_netdevs(self.tree) if in_memory_netdevs
                        else None)
        self.agents: list[HostAgent] = []
        self.report: StartReport | None = None

    def new_agent(self, driver: NetworkDriver | None = None, *,
                  start: bool = True,
                  metrics: "Metrics | None" = None) -> HostAgent:
        """An agent on this host with ``driver`` (default: the real
        LibvirtMacvtapDriver on the shared connection), this host's clock
        and netdevs; started unless ``start`` is False, its StartReport
        kept in ``report``."""
        clock: Callable[[], float] = self.clock or time.time
        agent = HostAgent(
            self.conf, network_driver=driver or LibvirtMacvtapDriver(
                self.conf, connection=self.conn),
            netdev_access=self.netdevs, clock=clock, metrics=metrics)
        self.agents.append(agent)
        if start:
            self.report = agent.start()
        return agent

    def close(self) -> None:
        """Close every agent made here (again is harmless), then the
        connection."""
        for agent in self.agents:
            agent.close()
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
