"""The SR-IOV port plugin of the nova-compute fork's libvirt driver.

The fork loads it through stevedore, as the entry point
``pci_passthrough`` of the namespace ``nova.virt.libvirt.sriov_plugin``
(the fork's ``[sriov_plugin]`` options), constructs it with
nova-compute's configuration and calls it where its libvirt driver
handles the host's life cycle and reports its resources. The plugin
keeps the host's HostAgent.
"""

import importlib
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough.agent import HostAgent
from pci_passthrough.config import opts

LOG = logging.getLogger(__name__)


class SriovPlugin:
    """One compute host's SR-IOV ports, for nova's libvirt driver.

    :param conf: nova-compute's configuration, already parsed; the
        library's ``[pci_passthrough]`` options are registered on it
        here and read from the files it parsed.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        opts.register_opts(conf)
        self._conf = conf
        self._agent: HostAgent | None = None

    @property
    def agent(self) -> HostAgent | None:
        """The host's agent, from init_host until cleanup_host."""
        return self._agent

    def init_host(self, host: str) -> None:
        """As the compute service starts: check the configuration, scan
        the host, load the ledger and reconcile the networks
        (HostAgent.start()); an error stops the service."""
        self.cleanup_host(host)
        # Settings are read here, not at construction: they are the
        # configuration as the service starts.
        agent = HostAgent(self._conf)
        try:
            report = agent.start()
        except BaseException:
            agent.close()
            raise
        self._agent = agent
        LOG.info("SR-IOV ports of host %s: %d devices, %d claims, %d "
                 "networks repaired, %d scan errors", host, report.devices,
                 report.allocations, len(report.actions),
                 len(report.scan_errors))

    def cleanup_host(self, host: str) -> None:
        """As the compute service stops: close the agent (its ledger and
        its libvirt connection)."""
        agent, self._agent = self._agent, None
        if agent is not None:
            LOG.info("Closing the SR-IOV port agent of host %s", host)
            agent.close()

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: dict[str, Any] | None = None
                             ) -> None:
        """From the driver's ``update_provider_tree``: this host's PF
        providers in nova's ``ProviderTree`` (HostAgent.
        update_provider_tree), beside nova's own.

        :raises nova.exception.ReshapeNeeded: providers of the host are
            under their former names and ``allocations`` were not given:
            at service start nova then calls again with every consumer's
            allocations, and their units move to the new names.
        """
        agent = self._agent
        if agent is None:
            return
        update = agent.update_provider_tree(provider_tree, nodename,
                                            allocations)
        if update.reshape_needed:
            LOG.info("SR-IOV providers %s of node %s are under their "
                     "former names: their allocations move to the new "
                     "ones", ", ".join(update.reshape_needed), nodename)
            # Only ever loaded by nova: its exception is there to raise.
            nova_exception = importlib.import_module("nova.exception")
            raise nova_exception.ReshapeNeeded()
        for former, name in update.renamed:
            LOG.info("SR-IOV provider %s of node %s is now %s", former,
                     nodename, name)
