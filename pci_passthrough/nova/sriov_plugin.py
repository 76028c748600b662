"""The SR-IOV port plugin of the nova-compute fork's libvirt driver.

The fork loads it through stevedore, as the entry point
``pci_passthrough`` of the namespace ``nova.virt.libvirt.sriov_plugin``
(the fork's ``[sriov_plugin]`` options), constructs it with
nova-compute's configuration and calls it where its libvirt driver
handles the host's life cycle. The plugin keeps the host's HostAgent.
"""

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
