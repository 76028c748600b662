"""Network driver benchmark on libvirt's test driver (no daemon).

Prints the libvirt calls per port to plug (define, start, autostart) and
to release, the time of 1,000 instances x 1 port plugged and released
through HostAgent-sized steps (ensure_network + delete_network), and the
time to list and reconcile 5,000 prefixed networks.

    python tools/bench/bench_network.py [--instances 1000] [--networks 5000]
"""

import argparse
import logging
import pathlib
import sys
import tempfile
import time
import uuid

import libvirt
from oslo_config import cfg

from pci_passthrough.agent import HostAgent
from pci_passthrough.config import opts
from pci_passthrough.fixtures.simulated_host import (
    libvirt_test_uri,
    simulated_host,
)
from pci_passthrough.fixtures.sysfs_tree import HostLayout, PfLayout
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.network.names import network_name


def driver(tmp: pathlib.Path) -> tuple[LibvirtMacvtapDriver,
                                       libvirt.virConnect]:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    uri = libvirt_test_uri(tmp / f"{uuid.uuid4()}.xml")
    conf.set_override("libvirt_uri", uri, group="pci_passthrough")
    conn = libvirt.open(uri)
    return LibvirtMacvtapDriver(conf, connection=conn), conn


def reconcile(tmp: pathlib.Path, count: int) -> float:
    """start() of an agent whose libvirt holds ``count`` prefixed networks
    no claim accounts for: it lists them and deletes every one."""
    conf, _ = simulated_host(tmp / "agent", HostLayout((PfLayout(
        "intel-e810", "0000:5e:00.0", numvfs=4),)),
        device_specs=['{"vendor_id": "8086"}'])
    conn = libvirt.open(conf.pci_passthrough.libvirt_uri)
    drv = LibvirtMacvtapDriver(conf, connection=conn)
    for i in range(count):
        drv.ensure_network(NetworkSpec(
            network_name("pcipt-", str(uuid.uuid4()), 0), f"vf{i}"))
    agent = HostAgent(conf, network_driver=drv)
    start = time.perf_counter()
    report = agent.start()
    took = time.perf_counter() - start
    assert len(report.actions) == count, len(report.actions)
    agent.close()
    conn.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=5000)
    args = parser.parse_args()
    # One INFO line per deleted network would be most of the output.
    logging.getLogger("pci_passthrough").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        drv, conn = driver(tmp)
        specs = [NetworkSpec(network_name("pcipt-", str(uuid.uuid4()), 0),
                             f"vf{i % 4096}") for i in range(args.instances)]
        start = time.perf_counter()
        drv.calls = 0
        for spec in specs:
            drv.ensure_network(spec)
        plug_calls = drv.calls / len(specs)
        drv.calls = 0
        for spec in specs:
            drv.delete_network(spec.name)
        release_calls = drv.calls / len(specs)
        cycle = time.perf_counter() - start
        print(f"plug: {plug_calls:.1f} libvirt calls per port; release: "
              f"{release_calls:.1f} per port")
        print(f"{args.instances} instances x 1 port plug + release: "
              f"{cycle:.3f} s ({cycle / args.instances * 1e3:.3f} ms per "
              f"cycle)")
        for i in range(args.networks):
            drv.ensure_network(NetworkSpec(
                network_name("pcipt-", str(uuid.uuid4()), 0), f"vf{i}"))
        start = time.perf_counter()
        found = drv.list_networks("pcipt-")
        listed = time.perf_counter() - start
        start = time.perf_counter()
        for name in found:
            drv.delete_network(name)
        deleted = time.perf_counter() - start
        print(f"driver: list {len(found)} networks {listed:.3f} s, delete "
              f"them {deleted:.3f} s")
        drv.close()
        conn.close()
        print(f"HostAgent.start() reconciling {args.networks} stray "
              f"networks (all deleted): {reconcile(tmp, args.networks):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
