"""pci-passthrough scan: what SR-IOV devices this host has, and which of
them device_spec lets it assign."""

import argparse
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

from pci_passthrough.cli import output
from pci_passthrough.config import devspec, opts, settings
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.model.device import PciDevice, ScanResult


def add_sysfs_root_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sysfs-root", metavar="DIR", default=None,
        help="Scan this sysfs tree instead of the option "
             "[pci_passthrough] sysfs_root.",
    )


def sysfs_root(conf: cfg.ConfigOpts) -> str:
    """The --sysfs-root argument when given, else the option."""
    root: str | None = getattr(conf.command, "sysfs_root", None)
    return root or conf.pci_passthrough.sysfs_root


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "scan", help="List the SR-IOV PFs and VFs found in sysfs.")
    add_sysfs_root_argument(parser)
    output.add_format_argument(parser)
    parser.set_defaults(action_fn=run, register_opts_fn=register_opts)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """The library's own options, which every command checks as HostAgent
    does. Not the network drivers' (listing those loads every driver, with
    libvirt and lxml), which scan never uses."""
    conf.register_opts([*opts.discovery_opts, *opts.flavor_opts,
                        *opts.network_opts], group=opts.GROUP)


def device_row(dev: PciDevice,
               tags: Mapping[str, str] | None) -> dict[str, Any]:
    return {
        "address": dev.address,
        "dev_type": dev.dev_type,
        "vendor_id": dev.vendor_id,
        "product_id": dev.product_id,
        "parent_addr": dev.parent_addr,
        "vf_index": dev.vf_index,
        "numa_node": dev.numa_node,
        "driver": dev.driver,
        "netdev": dev.netdev,
        "mac": dev.mac,
        "iommu_group": dev.iommu_group,
        "assignable": tags is not None,
        "tags": dict(tags) if tags is not None else {},
    }


def scan_report(result: ScanResult,
                specs: devspec.DeviceSpecList) -> dict[str, Any]:
    """The scan as the JSON document ``scan --format json`` prints."""
    return {
        "sysfs_root": result.sysfs_root,
        "devices": [device_row(dev, specs.match(dev))
                    for dev in result.devices],
        "errors": [{"path": e.path, "reason": e.reason}
                   for e in result.errors],
    }


def run(conf: cfg.ConfigOpts) -> int:
    # Validate the configuration before touching sysfs: a bad spec is an
    # error, never a partially applied configuration.
    host = settings.load_settings(conf)
    root: str | None = getattr(conf.command, "sysfs_root", None)
    result = sysfs_scan.scan(root or host.sysfs_root)
    report = scan_report(result, host.device_specs)
    if conf.command.format == "json":
        output.print_json(report)
    else:
        print_scan_table(report)
    return 0


def print_scan_table(report: dict[str, Any]) -> None:
    """The scan report as a table, then the skipped devices."""
    output.print_table(
        ("ADDRESS", "TYPE", "VENDOR:PRODUCT", "PF", "VF", "NETDEV", "NUMA",
         "DRIVER", "ASSIGNABLE", "TAGS"),
        [(d["address"], d["dev_type"],
          f"{d['vendor_id']}:{d['product_id']}", d["parent_addr"],
          d["vf_index"], d["netdev"], d["numa_node"], d["driver"],
          d["assignable"], d["tags"]) for d in report["devices"]],
    )
    for err in report["errors"]:
        print(f"skipped {err['path']}: {err['reason']}")
