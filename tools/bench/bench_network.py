"""Network driver benchmark on libvirt's test driver (no daemon).

Prints the libvirt calls per port to plug (define, start, autostart) and
to release, the time of 1,000 instances x 1 port plugged and released
through HostAgent-sized steps (ensure_network + delete_network), and the
time to list and reconcile 5,000 prefixed networks.

    python tools/bench/bench_network.py [--instances 1000] [--networks 5000]
"""

import argparse
import pathlib
import sys
import tempfile
import time
import uuid

import libvirt
from oslo_config import cfg

from pci_passthrough import opts
from pci_passthrough.fixtures.simulated_host import libvirt_test_uri
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=5000)
    args = parser.parse_args()
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
        print(f"reconcile of {len(found)} networks: list {listed:.3f} s, "
              f"delete all {deleted:.3f} s, total {listed + deleted:.3f} s")
        drv.close()
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
