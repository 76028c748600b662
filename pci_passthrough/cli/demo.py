"""pci-passthrough demo: the library's story on embedded defaults.

It needs no daemon, no SR-IOV hardware and no configuration: the host is
a sysfs tree shipped as a layout (pci_passthrough.demo_hosts) and written
to a temporary folder.
"""

import argparse
import pathlib
import tempfile
from collections.abc import Callable

from oslo_config import cfg

from pci_passthrough import demo_hosts, devspec, exception, sysfs_scan
from pci_passthrough.cli import output
from pci_passthrough.cli.scan import scan_report
from pci_passthrough.fixtures.sysfs_tree import build_tree


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo", help="Run the demo on embedded defaults (no daemon "
                     "needed).")
    parser.add_argument(
        "--workdir", metavar="DIR", default=None,
        help="Write the simulated hosts here and keep them, instead of a "
             "temporary folder.")
    parser.set_defaults(action_fn=run)


class _Steps:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        self.say(f"\n== Step {self.number}: {title}")


def run_demo(workdir: pathlib.Path,
             say: Callable[[str], None] = print) -> None:
    step = _Steps(say)

    step("host A's SR-IOV NICs, as a sysfs tree")
    root = workdir / "host-a" / "sys"
    tree = build_tree(root, demo_hosts.DEMO_HOST_A)
    say(f"Wrote {len(tree.pfs)} PFs and {len(tree.vfs)} VFs under {root}")

    step("the operator's device_spec (Nova's syntax)")
    specs = devspec.parse_device_specs(demo_hosts.DEMO_DEVICE_SPECS)
    for text in demo_hosts.DEMO_DEVICE_SPECS:
        say(f"  device_spec = {text}")

    step("discovery: one pass over sysfs")
    result = sysfs_scan.scan(root)
    report = scan_report(result, specs)
    output.print_table(
        ("ADDRESS", "TYPE", "VENDOR:PRODUCT", "PF", "VF", "NETDEV", "NUMA",
         "DRIVER", "ASSIGNABLE", "TAGS"),
        [(d["address"], d["dev_type"],
          f"{d['vendor_id']}:{d['product_id']}", d["parent_addr"],
          d["vf_index"], d["netdev"], d["numa_node"], d["driver"],
          d["assignable"], d["tags"]) for d in report["devices"]])
    vfs = [d for d in report["devices"] if d["dev_type"] == "type-VF"]
    assignable = [d for d in vfs if d["assignable"]]
    no_netdev = [d["address"] for d in vfs if d["netdev"] is None]
    say(f"{len(vfs)} VFs, {len(assignable)} assignable; without a netdev "
        f"(cannot back macvtap): {', '.join(no_netdev) or 'none'}")

    step("a mistyped device_spec is refused, naming the entry")
    try:
        devspec.parse_device_specs(['{"address": "0000:3b:02.8"}'])
    except exception.InvalidDeviceSpec as exc:
        say(f"  {exc}")


def run(conf: cfg.ConfigOpts) -> int:
    if conf.command.workdir:
        workdir = pathlib.Path(conf.command.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        run_demo(workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="pci-passthrough-demo-") as tmp:
        run_demo(pathlib.Path(tmp))
    return 0
