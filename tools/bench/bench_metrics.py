"""Metrics and health benchmark at 1,024, 4,096 and 16,384 VFs.

For each size it prints the median time of: a rescan taken by the
tracker (update_devices, health included) with every PF healthy and with
half of them without carrier; pool_counts(); a scrape (the text
exposition of the agent's collector); and the exposition's size.

    python tools/bench/bench_metrics.py [--sizes 1024:16,...] [--n 20]
"""

import argparse
import logging
import pathlib
import statistics
import sys
import tempfile
import time

from bench_tracker import FLAVORS, SPECS, host, ms

from pci_passthrough.config import devspec, flavors
from pci_passthrough.ledger import Ledger
from pci_passthrough.metrics import Metrics, exposition
from pci_passthrough.model.device import ScanResult
from pci_passthrough.tracker import HostTracker


def half_down(scan: ScanResult) -> ScanResult:
    devices = tuple(d._replace(link_state="down")
                    if d.is_pf and int(d.address[5:7], 16) % 2 else d
                    for d in scan.devices)
    return ScanResult(scan.sysfs_root, devices)


def median_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(vfs: int, pfs: int, n: int) -> None:
    specs = devspec.parse_device_specs(SPECS)
    fl = flavors.parse_flavors(FLAVORS, known_tags=specs.tag_names,
                               special_attributes=["group"])
    healthy = host(vfs, pfs)
    sick = half_down(healthy)
    with tempfile.TemporaryDirectory() as tmp:
        tracker = HostTracker(fl, Ledger(pathlib.Path(tmp) / "l.db"))
        tracker.update_devices(healthy, specs)
        rescan = median_of(n, lambda: tracker.update_devices(healthy,
                                                             specs))
        flip = iter([sick, healthy] * n)
        rescan_sick = median_of(n, lambda: tracker.update_devices(
            next(flip), specs))
        tracker.update_devices(sick, specs)
        counts = median_of(n, tracker.pool_counts)
        metrics = Metrics(pools=tracker.pool_counts)
        scrape = median_of(n, lambda: exposition(metrics))
        size = len(exposition(metrics))
        tracker.close()
    print(f"{vfs:>6} VFs / {pfs:>2} PFs: rescan {ms(rescan)} (health "
          f"flipping on half the PFs {ms(rescan_sick)}); pool_counts "
          f"{ms(counts)}; scrape {ms(scrape)}, {size:,} bytes",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1024:16,4096:32,16384:64",
                        help="VFS:PFS pairs")
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    # Every flip logs each PF: the figures, not the warnings, are wanted.
    logging.getLogger("pci_passthrough").setLevel(logging.ERROR)
    for pair in args.sizes.split(","):
        vfs, pfs = (int(x) for x in pair.split(":"))
        measure(vfs, pfs, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
