"""pci-passthrough doctor: compare the ledger with sysfs, libvirt's
networks and the VF netdevs (and Placement, where the [placement]
options set auth_type), say what is wrong and, with --fix, repair what
is safe and ours.

Exit code: 0 nothing wrong (or everything repaired), 1 findings left,
2 the check itself failed (the ledger, libvirt or sysfs unusable).
The agent and libvirt are imported inside the action: --help and the
other commands never pay for them.
"""

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli import output
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root

if TYPE_CHECKING:
    from pci_passthrough.placement.client import PlacementClient

LOG = logging.getLogger(__name__)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "doctor", help="Find what differs between the ledger, sysfs, "
                       "libvirt, the VF netdevs and Placement; --fix "
                       "repairs what is safe.")
    add_sysfs_root_argument(parser)
    output.add_format_argument(parser)
    parser.add_argument(
        "--fix", action="store_true",
        help="Repair what is safe and ours: orphan, missing, inactive "
             "and drifted networks, renamed netdevs, VF states not "
             "restored, expired incoming leases, and this host's "
             "providers and instances' units in Placement (one "
             "placement sync). Networks and devices that are not ours, "
             "and allocations no claim here explains, are never "
             "touched.")
    parser.add_argument(
        "--skip-placement", action="store_true",
        help="Do not compare with Placement even where the [placement] "
             "options are set (for when Placement is down).")
    parser.set_defaults(action_fn=run)


def placement_client(conf: cfg.ConfigOpts) -> "PlacementClient | None":
    """The Placement client, where ``[placement] auth_type`` is set
    (keystoneauth1 is imported only then)."""
    from pci_passthrough.placement.client import PlacementClient
    from pci_passthrough.placement.conf import register_placement_opts

    register_placement_opts(conf)
    if not conf.placement.auth_type:
        return None
    return PlacementClient.from_conf(conf)


def run(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.agent import HostAgent
    from pci_passthrough.cli.claims import _quiet_libvirt

    _quiet_libvirt(conf)
    conf.set_override("sysfs_root", sysfs_root(conf),
                      group="pci_passthrough")
    try:
        client = (None if conf.command.skip_placement
                  else placement_client(conf))
        # Without --fix nothing is written: the ledger is read-only (a
        # missing one reads as no claims and is not created).
        with HostAgent(conf, readonly=not conf.command.fix) as agent:
            report = agent.doctor(fix=conf.command.fix, placement=client)
    except exception.PciPassthroughError as exc:
        LOG.debug("doctor failed", exc_info=True)
        hint = ""
        if isinstance(exc, (exception.PlacementUnavailable,
                            exception.PlacementRequestFailed)):
            hint = " (nothing was changed; --skip-placement checks " \
                   "the host alone)"
        print(f"pci-passthrough: error: {exc}{hint}", file=sys.stderr)
        return 2
    if conf.command.format == "json":
        output.print_json(report.as_dict())
    else:
        output.print_table(
            ("KIND", "SUBJECT", "PROBLEM", "REPAIR", "STATUS"),
            [(f.kind.value, f.subject, f.problem, f.repair,
              "fixed" if f.fixed else ("left: " + f.left if f.left
                                       else "found"))
             for f in report.findings])
        left = len(report.left)
        print("No findings." if not report.findings else
              f"{len(report.findings)} finding(s), {left} left.")
    return 1 if report.left else 0
