"""pci-passthrough doctor: compare the ledger with sysfs, libvirt's
networks and the VF netdevs, say what is wrong and, with --fix, repair
what is safe and ours.

Exit code: 0 nothing wrong (or everything repaired), 1 findings left,
2 the check itself failed (the ledger, libvirt or sysfs unusable).
The agent and libvirt are imported inside the action: --help and the
other commands never pay for them.
"""

import argparse
import logging
import sys

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli import output
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root

LOG = logging.getLogger(__name__)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "doctor", help="Find what differs between the ledger, sysfs, "
                       "libvirt and the VF netdevs; --fix repairs what is "
                       "safe.")
    add_sysfs_root_argument(parser)
    output.add_format_argument(parser)
    parser.add_argument(
        "--fix", action="store_true",
        help="Repair what is safe and ours: orphan, missing, inactive "
             "and drifted networks, renamed netdevs, VF states not "
             "restored, expired incoming leases. Networks and devices "
             "that are not ours are never touched.")
    parser.set_defaults(action_fn=run)


def run(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.agent import HostAgent
    from pci_passthrough.cli.claims import _quiet_libvirt

    _quiet_libvirt(conf)
    conf.set_override("sysfs_root", sysfs_root(conf),
                      group="pci_passthrough")
    try:
        # Without --fix nothing is written: the ledger is read-only (a
        # missing one reads as no claims and is not created).
        with HostAgent(conf, readonly=not conf.command.fix) as agent:
            report = agent.doctor(fix=conf.command.fix)
    except exception.PciPassthroughError as exc:
        LOG.debug("doctor failed", exc_info=True)
        print(f"pci-passthrough: error: {exc}", file=sys.stderr)
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
