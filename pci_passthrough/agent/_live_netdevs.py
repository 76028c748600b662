"""A claim's VF netdev as sysfs names it at the moment of a plug: udev
may have renamed it since the last scan, and a VF is its PCI address,
never its netdev's name."""

import dataclasses

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.scan import HostScan
from pci_passthrough.discovery.netdev_lookup import live_netdev
from pci_passthrough.model.claims import Allocation
from pci_passthrough.tracker import HostTracker

LOG = logging.getLogger(__name__)


def with_live_netdevs(scan: HostScan, tracker: HostTracker,
                      networks: HostNetworks, instance: str,
                      allocs: list[Allocation]) -> list[Allocation]:
    """The claims with their VFs' netdevs as sysfs names them now.

    :raises VfNetdevUnresolved: a VF's net/ does not name exactly one
        netdev.
    """
    live = []
    renamed = []
    for alloc in allocs:
        found = live_netdev(scan.sysfs_root, alloc.address)
        if found.netdev is None:
            raise exception.VfNetdevUnresolved(
                network=networks.name(instance, alloc.port_index),
                instance=instance, port=alloc.port_index,
                reason=f"the netdev of VF {alloc.address} cannot be "
                       f"resolved: {found.problem}; nothing was "
                       f"plugged")
        if found.netdev != alloc.netdev:
            LOG.warning("VF %s of instance %s port %s is netdev %s "
                        "now, not %s as the last scan saw: plugging "
                        "%s", alloc.address, instance,
                        alloc.port_index, found.netdev, alloc.netdev,
                        found.netdev)
            renamed.append(alloc.address)
        live.append(dataclasses.replace(alloc, netdev=found.netdev))
    if renamed:
        _refresh_names(scan, tracker, live, renamed)
    return live


def _refresh_names(scan: HostScan, tracker: HostTracker,
                   live: list[Allocation], renamed: list[str]) -> None:
    """The tracker and the ledger take the names a plug found."""
    try:
        scan.refresh()
    except exception.SysfsRootError as exc:
        LOG.warning("Cannot rescan sysfs after a rename (%s); the "
                    "next refresh will", exc)
    for alloc in live:
        if alloc.address in renamed and alloc.netdev:
            tracker.set_netdev(alloc.address, alloc.netdev)
