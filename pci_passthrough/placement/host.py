"""One host's inputs to Placement, read from its configuration: the
provider tree, the flavors and the ledger's records."""

import dataclasses
import os
from collections.abc import Callable

from oslo_config import cfg

from pci_passthrough.config.flavors import FlavorSet
from pci_passthrough.config.settings import load_settings
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.ledger import Ledger, LedgerRecord
from pci_passthrough.placement import conf as placement_conf
from pci_passthrough.placement import requests
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.sync import Reporter, SyncReport
from pci_passthrough.placement.tree import ProviderTree, build_tree


@dataclasses.dataclass(frozen=True, slots=True)
class HostView:
    """What one host reports to Placement: its provider tree, the
    flavors whose requests name traits and classes, and its claims."""

    tree: ProviderTree
    flavors: FlavorSet
    records: tuple[LedgerRecord, ...]
    #: The ledger the records were read from, read again before each
    #: heal (None: the records are all there is).
    ledger_path: str | None = None

    def sync(self, reporter: Reporter, *,
             create_root: bool = True) -> SyncReport:
        """Report this view, creating every trait and class its flavors'
        requests may name (and the root provider if ``create_root``)."""
        return reporter.sync(
            self.tree, self.records, requests.flavor_traits(self.flavors),
            requests.flavor_classes(self.flavors), create_root=create_root,
            ledger=None if self.ledger_path is None
            else ledger_reader(self.ledger_path))


def ledger_reader(path: str) -> Callable[[], list[LedgerRecord]]:
    """Reads the ledger at ``path`` afresh at each call, creating and
    changing nothing (a missing file is no claims)."""
    def read() -> list[LedgerRecord]:
        with Ledger(path, readonly=True) as ledger:
            return ledger.records()
    return read


def host_view(conf: cfg.ConfigOpts, sysfs_root: str | None = None,
              *, read_ledger: bool = True) -> HostView:
    """Validate the configuration, scan sysfs and read the ledger (a
    missing ledger file means no claims; it is not created).

    :raises ConfigError: an invalid option, naming it.
    """
    settings = load_settings(conf)
    scan = sysfs_scan.scan(sysfs_root or settings.sysfs_root)
    name = placement_conf.nodename(conf)
    try:
        tree = build_tree(name, scan.devices, settings.device_specs,
                          settings.special_attributes)
    except ValueError as exc:
        raise placement_conf.invalid_nodename(name, str(exc)) from None
    records: list[LedgerRecord] = []
    if read_ledger and os.path.exists(settings.state_path):
        with Ledger(settings.state_path) as ledger:
            records = ledger.records()
    return HostView(tree, settings.flavors, tuple(records),
                    settings.state_path if read_ledger else None)


def sync_host(conf: cfg.ConfigOpts, sysfs_root: str | None = None,
              client: PlacementClient | None = None, *,
              create_root: bool = False) -> SyncReport:
    """``placement sync``: this host's view, reported to the Placement
    the ``[placement]`` options name.  The root provider is created only
    with ``create_root`` (hosts without nova-compute)."""
    view = host_view(conf, sysfs_root)
    return view.sync(Reporter(client or PlacementClient.from_conf(conf)),
                     create_root=create_root)
