"""doctor benchmark on libvirt's test driver (no daemon).

Prints the time of HostAgent.doctor() on a host with N plugged ports
and nothing wrong, then with every tenth network rewritten by hand and
as many orphans: the examination, then the repair (fix=True).

    python tools/bench/bench_doctor.py [--ports 500]
"""

import argparse
import logging
import pathlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import libvirt

from pci_passthrough.agent import HostAgent
from pci_passthrough.fixtures.simulated_host import simulated_host
from pci_passthrough.fixtures.sysfs_tree import HostLayout, PfLayout
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.placement.client import PlacementClient

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", type=int, default=500)
    parser.add_argument("--placement", action="store_true",
                        help="also compare with a real Placement")
    args = parser.parse_args()
    logging.getLogger("pci_passthrough").setLevel(logging.ERROR)
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    pfs = -(-args.ports // 64)
    layout = HostLayout(tuple(
        PfLayout("intel-x710", f"0000:{0x10 + i:02x}:00.0", numvfs=64,
                 netdev=f"ens{i}f0") for i in range(pfs)))
    with tempfile.TemporaryDirectory(prefix="pcipt-bench-doctor-") as tmp:
        conf, _ = simulated_host(pathlib.Path(tmp), layout,
                                 device_specs=SPECS, flavors=FLAVORS)
        conn = libvirt.open(conf.pci_passthrough.libvirt_uri)
        agent = HostAgent(conf, network_driver=LibvirtMacvtapDriver(
            conf, connection=conn))
        agent.start()
        names = []
        for _ in range(args.ports):
            inst = str(uuid.uuid4())
            agent.claim(inst, [PortRequest(0, flavor="net1")])
            names.append(agent.plug(inst)[0].network)
        report, took = timed(agent.doctor)
        assert not report.findings, report
        print(f"doctor, {args.ports} plugged ports, nothing wrong: "
              f"{took * 1000:.0f} ms")
        broken = names[::10]
        for name in broken:
            net = conn.networkLookupByName(name)
            net.destroy()
            net.undefine()
            conn.networkDefineXML(
                f"<network><name>{name}</name><forward mode='bridge'>"
                f"<interface dev='eth0'/></forward></network>")
            conn.networkDefineXML(
                f"<network><name>pcipt-{uuid.uuid4()}-0</name><forward "
                f"mode='bridge'><interface dev='eth0'/></forward>"
                f"</network>")
        report, took = timed(agent.doctor)
        print(f"doctor, {len(broken)} drifted networks and {len(broken)} "
              f"orphans: {len(report.findings)} findings in "
              f"{took * 1000:.0f} ms")
        report, took = timed(lambda: agent.doctor(fix=True))
        assert not report.left, report.left
        print(f"doctor --fix of those {len(report.findings)} findings: "
              f"{took * 1000:.0f} ms")
        if args.placement:
            bench_placement(agent, pathlib.Path(tmp), names)
        agent.close()
        conn.close()
    return 0


def bench_placement(agent: HostAgent, workdir: pathlib.Path,
                    networks: list[str]) -> None:
    from oslo_config import cfg

    from pci_passthrough.placement.conf import register_placement_opts

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]
                           / "tests" / "functional" / "placement_service"))
    import placement_server

    with placement_server.start(workdir / "placement") as server:
        conf = cfg.ConfigOpts()
        register_placement_opts(conf)
        conf(["--config-file", str(server.write_client_config(
            workdir / "placement.conf"))], default_config_files=[],
            default_config_dirs=[])
        client = PlacementClient.from_conf(conf)
        tree = agent.provider_tree()
        providers = len(tree.providers)
        # nova-compute makes the root provider.
        client.post("/resource_providers", {"name": tree.nodename})
        # The host's PFs are new to Placement: doctor --fix reports them
        # and its instances' units.
        report, took = timed(lambda: agent.doctor(fix=True,
                                                  placement=client))
        assert not report.left, report.left[:3]
        print(f"doctor --fix on a host Placement never saw ({providers} "
              f"providers, {len(report.findings)} findings): "
              f"{took * 1000:.0f} ms")
        report, took = timed(lambda: agent.doctor(placement=client))
        assert not report.findings, report.findings[:3]
        print(f"doctor with Placement, {len(networks)} instances, nothing "
              f"wrong: {took * 1000:.0f} ms")
        lost = [a.instance_uuid for a in agent.allocations()][::10]
        for inst in lost:
            body = client.get(f"/allocations/{inst}").body
            client.put(f"/allocations/{inst}", {
                "allocations": {}, "project_id": body["project_id"],
                "user_id": body["user_id"],
                "consumer_generation": body["consumer_generation"],
                "consumer_type": "INSTANCE"}, expect=(204,))
        report, took = timed(lambda: agent.doctor(placement=client))
        print(f"doctor with Placement, {len(lost)} instances' units lost: "
              f"{len(report.findings)} findings in {took * 1000:.0f} ms")
        report, took = timed(lambda: agent.doctor(fix=True,
                                                  placement=client))
        assert not report.left, report.left[:3]
        print(f"doctor --fix of those (one placement sync): "
              f"{took * 1000:.0f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
