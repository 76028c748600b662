"""Scan benchmark: generated trees of 1,024, 4,096 and 16,384 VFs.

For each size it prints the median wall time of a full scan, the time per
VF, the file system calls per VF (counted twice: by the scanner's own
reader, one per open+read+close, readlink or listdir; and as raw system
calls by ``strace -f -c`` when strace is installed), and the peak memory
per device record (tracemalloc, the result kept alive).

    python tools/bench/bench_scan.py [--sizes 1024,4096,16384] [--runs 5]
"""

import argparse
import gc
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

from pci_passthrough import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree

PFS = 16


def build(root: pathlib.Path, vfs: int) -> None:
    per_pf = vfs // PFS
    pfs = []
    for i in range(PFS):
        # One PF per bus, spread over two NUMA nodes; buses far enough
        # apart that each PF's VFs fit on its own buses.
        bus = 0x10 + i * 0x0A
        pfs.append(sysfs_tree.PfLayout(
            "intel-e810", f"0000:{bus:02x}:00.0", numvfs=per_pf,
            totalvfs=per_pf, numa_node=i % 2))
    sysfs_tree.build_tree(root, sysfs_tree.HostLayout(tuple(pfs)))


def strace_syscalls(root: pathlib.Path) -> int | None:
    if not shutil.which("strace"):
        return None
    code = ("import sys; from pci_passthrough import sysfs_scan; "
            "sysfs_scan.scan(sys.argv[1])")
    # Count the scan alone: the same run without scanning is subtracted.
    counts = []
    for args in ([str(root)], None):
        cmd = [sys.executable, "-c",
               code if args else "import pci_passthrough.sysfs_scan",
               *(args or [])]
        out = subprocess.run(
            ["strace", "-f", "-c", "-o", "/dev/stdout", *cmd],
            capture_output=True, text=True, check=True).stdout
        total = [ln for ln in out.splitlines() if ln.strip().endswith(
            "total")]
        counts.append(int(total[-1].split()[3]) if total else 0)
    return counts[0] - counts[1]


def measure(vfs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        build(root, vfs)
        times = []
        for _ in range(runs):
            gc.collect()
            start = time.perf_counter()
            result = sysfs_scan.scan(root)
            times.append(time.perf_counter() - start)
        assert len(result.devices) == vfs + PFS, len(result.devices)
        reader = sysfs_scan.SysfsReader()
        sysfs_scan.scan(root, reader=reader)
        del result
        gc.collect()
        tracemalloc.start()
        kept = sysfs_scan.scan(root)
        _, peak = tracemalloc.get_traced_memory()
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        syscalls = strace_syscalls(root)
        median = statistics.median(times)
        n = len(kept.devices)
        print(f"{vfs:>6} VFs ({PFS} PFs): scan {median * 1000:7.1f} ms "
              f"median of {runs} (min {min(times) * 1000:.1f}), "
              f"{median / vfs * 1e6:5.1f} us/VF, "
              f"{reader.calls / vfs:4.2f} fs calls/VF (reader), "
              + (f"{syscalls / vfs:5.2f} syscalls/VF (strace), "
                 if syscalls is not None else "")
              + f"memory kept {current / n:5.0f} B/record, "
              f"peak {peak / n:5.0f} B/record", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1024,4096,16384")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    for size in (int(s) for s in args.sizes.split(",")):
        measure(size, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
