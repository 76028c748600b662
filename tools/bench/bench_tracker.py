"""Tracker benchmark: claims and frees at 1,024, 4,096 and 16,384 VFs.

For each size it prints the median and p99 latency of a single-VF claim
(its ledger transaction included) and of its free, claims per second, the
in-memory match alone (choosing the device, no ledger), a 4-port claim,
and explain over every device. The ledger is a real SQLite file in a
temporary folder.

    python tools/bench/bench_tracker.py [--sizes 1024,4096,16384] [--n 500]
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

from pci_passthrough.config import devspec, flavors
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.device import (
    DEV_TYPE_PF,
    DEV_TYPE_VF,
    PciDevice,
    ScanResult,
)
from pci_passthrough.tracker import HostTracker

SPECS = ['{"vendor_id": "8086", "physical_network": "physnet1"}']
FLAVORS = ['{"name": "net1", "physical_network": "physnet1"}']


def host(vfs: int, pfs: int) -> ScanResult:
    devices = []
    per_pf = vfs // pfs
    for p in range(pfs):
        # Two buses per PF: past 248 VFs, routing IDs spill into the
        # next bus, as the kernel numbers them (offset 8, stride 1).
        pf_rid = (2 * p + 1) << 8
        pf_addr = _address(pf_rid)
        devices.append(PciDevice(pf_addr, DEV_TYPE_PF, "8086", "159b",
                                 numa_node=p % 2, netdev=f"pf{p}",
                                 driver="ice", totalvfs=per_pf,
                                 numvfs=per_pf))
        for i in range(per_pf):
            devices.append(PciDevice(
                _address(pf_rid + 8 + i), DEV_TYPE_VF,
                "8086", "1889", numa_node=p % 2, netdev=f"p{p}v{i}",
                driver="iavf", parent_addr=pf_addr, vf_index=i,
                pf_netdev=f"pf{p}"))
    return ScanResult("/bench", tuple(devices))


def _address(rid: int) -> str:
    """The PCI address of a routing ID (bus, device, function)."""
    return f"0000:{rid >> 8:02x}:{(rid >> 3) & 0x1f:02x}.{rid & 7}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:.3f} ms"


def measure(vfs: int, pfs: int, n: int) -> None:
    specs = devspec.parse_device_specs(SPECS)
    fl = flavors.parse_flavors(FLAVORS, known_tags=specs.tag_names,
                               special_attributes=["group"])
    with tempfile.TemporaryDirectory() as tmp:
        tracker = HostTracker(fl, Ledger(pathlib.Path(tmp) / "l.db"))
        tracker.update_devices(host(vfs, pfs), specs)
        port = [PortRequest(0, flavor="net1")]
        wanted = [(port[0], fl.get("net1"))]
        claims, frees, matches = [], [], []
        for _ in range(n):
            inst = str(uuid.uuid4())
            # The in-memory match alone: the same selection a claim makes,
            # without the ledger transaction.
            start = time.perf_counter()
            tracker._select(inst, wanted, None)
            matches.append(time.perf_counter() - start)
            start = time.perf_counter()
            tracker.claim(inst, port)
            claims.append(time.perf_counter() - start)
            start = time.perf_counter()
            tracker.free(inst)
            frees.append(time.perf_counter() - start)
        four = [PortRequest(i, flavor="net1") for i in range(4)]
        multi = []
        for _ in range(max(n // 4, 10)):
            inst = str(uuid.uuid4())
            start = time.perf_counter()
            tracker.claim(inst, four)
            multi.append(time.perf_counter() - start)
            tracker.free(inst)
        start = time.perf_counter()
        tracker.explain("net1", count=4)
        explain = time.perf_counter() - start
        tracker.close()
    med = statistics.median(claims)
    print(f"{vfs:>6} VFs / {pfs:>2} pools: claim median {ms(med)} p99 "
          f"{ms(pct(claims, 0.99))} ({1 / med:,.0f} claims/s); match "
          f"median {statistics.median(matches) * 1e6:.1f} us p99 "
          f"{pct(matches, 0.99) * 1e6:.1f} us; free median "
          f"{ms(statistics.median(frees))}; 4-port claim median "
          f"{ms(statistics.median(multi))}; explain {ms(explain)}",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1024:16,4096:32,16384:64",
                        help="VFS:POOLS pairs")
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    for pair in args.sizes.split(","):
        vfs, pools = (int(x) for x in pair.split(":"))
        measure(vfs, pools, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
