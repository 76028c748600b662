"""pci-passthrough placement sync, show and request: this host's SR-IOV
VFs as OpenStack Placement sees them.

keystoneauth1 and the reporter are imported inside the actions, so other
commands start without them.
"""

import argparse
import sys
from collections.abc import Callable

from oslo_config import cfg

from pci_passthrough.cli import output
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root

Action = Callable[[cfg.ConfigOpts], int]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = subparsers.add_parser(
        "placement", help="Report the SR-IOV VFs to OpenStack Placement, "
                          "or show what would be reported and asked.")
    sub = top.add_subparsers(dest="placement_command", metavar="ACTION")
    sub.required = True

    def parser(name: str, help_text: str,
               action: Action) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        add_sysfs_root_argument(p)
        output.add_format_argument(p)
        p.set_defaults(action_fn=action)
        return p

    p = parser("sync", "Create or update this host's providers, traits "
                       "and classes in Placement and heal allocations "
                       "from the ledger ([placement] options say where).",
               run_sync)
    p.add_argument(
        "--create-root", action="store_true",
        help="Create the compute node's root provider when missing: only "
             "on a host without nova-compute, which creates it itself "
             "with the compute node's UUID.")
    parser("show", "The provider tree this host reports (no network).",
           run_show)
    p = parser("request", "The GET /allocation_candidates queries for N "
                          "devices of a flavor (no network).", run_request)
    p.add_argument("flavor", metavar="FLAVOR")
    p.add_argument("--count", type=int, default=1,
                   help="How many devices (default 1).")


def run_sync(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.placement.host import sync_host

    report = sync_host(conf, sysfs_root(conf),
                       create_root=conf.command.create_root)
    if conf.command.format == "json":
        output.print_json(report.as_dict())
        return _problems(report.problems())
    rows = [(what, ", ".join(names))
            for what, names in (
                ("created providers", report.created_providers),
                ("updated inventories", report.updated_inventories),
                ("updated traits", report.updated_traits),
                ("deleted providers", report.deleted_providers),
                ("kept, still in use", report.kept_in_use),
                ("healed consumers", report.healed_consumers),
                ("held devices not reported", report.unmapped),
                ("consumers unknown to the ledger",
                 report.unknown_consumers)) if names]
    output.print_table(("WHAT", "WHICH"), rows)
    print(f"{report.writes} write(s), {report.conflicts_retried} "
          f"conflict(s) retried; root provider {report.root_uuid}")
    return _problems(report.problems())


def _problems(lines: list[str]) -> int:
    """What sync could not do, one line each, last: exit 1 if any."""
    for line in lines:
        print(f"pci-passthrough: error: {line}", file=sys.stderr)
    return 1 if lines else 0


def run_show(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.placement.host import host_view

    tree = host_view(conf, sysfs_root(conf)).tree
    if conf.command.format == "json":
        output.print_json(tree.as_dict())
        return 0
    print(f"root provider {tree.nodename}")
    output.print_table(
        ("PROVIDER", "CLASS", "TOTAL", "RESERVED", "TRAITS"),
        [(p.name, p.resource_class, p.total, p.reserved,
          " ".join(sorted(p.traits))) for p in tree.providers])
    return 0


def run_request(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.placement import requests
    from pci_passthrough.placement.host import host_view

    view = host_view(conf, sysfs_root(conf), read_ledger=False)
    queries = requests.request_queries(
        view.flavors, conf.command.flavor, conf.command.count,
        view.tree.catalog())
    if conf.command.format == "json":
        output.print_json({"flavor": conf.command.flavor,
                           "count": conf.command.count,
                           "microversion": requests.MICROVERSION,
                           "queries": queries})
        return 0
    for query in queries:
        print(f"GET /allocation_candidates?{query}")
    if not queries:
        print(f"No provider of this host can serve flavor "
              f"{conf.command.flavor}.")
    return 0
