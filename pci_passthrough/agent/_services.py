"""HostAgent's services, made and wired together from its parameters."""

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_config import cfg

from pci_passthrough.agent.clock import LeaseClock, as_clock, lease_start
from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.agent.host_placement import HostPlacement
from pci_passthrough.agent.leases import Leases
from pci_passthrough.agent.lifecycle import Lifecycle
from pci_passthrough.agent.migrations import Migrations
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.ports import Ports
from pci_passthrough.agent.scan import HostScan
from pci_passthrough.agent.vf_hygiene import VfHygiene
from pci_passthrough.config.devspec import DeviceSpecList
from pci_passthrough.config.settings import HostSettings, load_settings
from pci_passthrough.doctor.host_doctor import HostDoctor
from pci_passthrough.doctor.host_repairs import HostRepairs
from pci_passthrough.hygiene.access import (
    NetdevAccess,
    NoNetdevAccess,
    netlink_access,
)
from pci_passthrough.ledger import Ledger
from pci_passthrough.network import load_network_driver
from pci_passthrough.network.base import NetworkDriver
from pci_passthrough.placement import conf as placement_conf
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics


@dataclasses.dataclass(frozen=True, slots=True)
class Services:
    """One agent's parts."""

    gate: OperationGate
    tracker: HostTracker
    netdevs: NetdevAccess
    networks: HostNetworks
    placement: HostPlacement
    ports: Ports
    leases: Leases
    migrations: Migrations
    lifecycle: Lifecycle
    doctor: HostDoctor
    metrics: "Metrics"


def make_services(conf: cfg.ConfigOpts,
                  network_driver: NetworkDriver | None,
                  netdev_access: NetdevAccess | None,
                  clock: LeaseClock | Callable[[], float], readonly: bool,
                  metrics: "Metrics | None",
                  gate: OperationGate | None) -> Services:
    """The parts of an agent with HostAgent's parameters."""
    # The whole configuration is validated here, before anything on the
    # host is touched: no partial configuration is ever used.
    settings = load_settings(conf)
    netdevs = (_default_netdev_access(settings) if netdev_access is None
               else netdev_access)
    driver = network_driver or load_network_driver(conf)
    ledger = Ledger(settings.state_path, readonly=readonly)
    tracker = HostTracker(settings.flavors, ledger)
    metrics = _pool_metrics(metrics, tracker, settings.device_specs)
    gate = OperationGate() if gate is None else gate
    networks = HostNetworks(settings.network_name_prefix, driver)
    scan = HostScan(settings.sysfs_root, settings.device_specs, tracker)
    placement = HostPlacement(
        functools.partial(placement_conf.nodename, conf), tracker, scan,
        settings.device_specs, settings.flavors)
    hygiene = VfHygiene(tracker, netdevs)
    clock = as_clock(clock)
    started = functools.partial(lease_start, clock)
    ports = Ports(tracker=tracker, networks=networks, hygiene=hygiene,
                  placement=placement, scan=scan, metrics=metrics,
                  clock=started)
    timeout = settings.incoming_migration_timeout
    leases = Leases(gate=gate, tracker=tracker, ledger=ledger,
                    release=ports.unplug, domains=driver.domain_presence,
                    metrics=metrics, clock=clock, timeout=timeout)
    return Services(
        gate=gate, tracker=tracker, netdevs=netdevs, networks=networks,
        placement=placement, ports=ports, leases=leases,
        migrations=Migrations(
            tracker=tracker, ports=ports, networks=networks,
            metrics=metrics, clock=started, lease_timeout=timeout),
        lifecycle=Lifecycle(
            gate=gate, scan=scan, tracker=tracker, networks=networks,
            leases=leases, metrics=metrics, ledger=ledger),
        doctor=HostDoctor(
            sysfs_root=settings.sysfs_root, tracker=tracker, ledger=ledger,
            networks=networks, netdevs=netdevs, leases=leases,
            rescan=scan.refresh, repairs=HostRepairs(
                tracker=tracker, networks=networks, leases=leases,
                journals=hygiene, locks=gate,
                sysfs_root=settings.sysfs_root, netdevs=netdevs),
            placement=placement, metrics=metrics),
        metrics=metrics)


def _default_netdev_access(settings: HostSettings) -> NetdevAccess:
    """Netlink on the host's own /sys; nothing on a relocated tree,
    whose netdevs are not this host's."""
    if os.path.realpath(settings.sysfs_root) == "/sys":
        return netlink_access(settings.netdev_writes)
    return NoNetdevAccess()


def _pool_metrics(metrics: "Metrics | None", tracker: HostTracker,
                  specs: DeviceSpecList) -> "Metrics":
    """``metrics``, or a Metrics of its own, reading its pool gauges
    from the tracker."""
    from pci_passthrough.metrics import Metrics, pool_label_names

    labels = pool_label_names(specs.tag_names)
    if metrics is None:
        return Metrics(pools=tracker.pool_counts, tag_labels=labels)
    metrics.use_pools(tracker.pool_counts)
    return metrics
