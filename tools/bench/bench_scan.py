"""Scan benchmark: the scan against the bare-read floor, side by side.

For generated trees of 1,024, 4,096 and 16,384 VFs (16 Intel E810 PFs),
measured in the same run:

- scan: the median wall time of sysfs_scan.scan(), every check in place;
- floor: the median wall time of a bare loop making the same system
  calls (the same listings, lstats, reads and readlinks, in the same
  order) with no check, no parsing and no record;
- ratio: scan / floor (goal <= 1.5);
- file system calls per VF, counted twice:
  * raw system calls under ``strace -f -c`` (openat, read, close,
    newfstatat/lstat/statx, fstat, readlink(at), getdents64, lseek,
    ioctl), the scan's process minus one that only imports the same
    modules; the floor's count is printed too, to show it makes the same
    calls;
  * audit events (sys.addaudithook: open, os.scandir, os.listdir), which
    miss lstat and readlink (Python raises no audit event for them);
- memory per device record: kept, the deep size of the result (each
  record and every object it holds, shared ones once: tracemalloc's
  "current" would count the tuples CPython keeps in its free lists), and
  the peak during a scan, by tracemalloc.

    python tools/bench/bench_scan.py [--sizes 1024,4096,16384] [--runs 7]
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

from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree

PFS = 16
FILE_SYSCALLS = ("openat", "open", "read", "close", "newfstatat", "lstat",
                 "stat", "statx", "fstat", "readlink", "readlinkat",
                 "getdents64", "lseek", "ioctl")
_O_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY


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


def _read(path: str) -> bytes:
    fd = os.open(path, _O_READ)
    try:
        return os.read(fd, 128)
    finally:
        os.close(fd)


def floor(root: str) -> None:
    """The scanner's system calls, bare: what reading costs with no
    check, no parsing and no record."""
    readlink, lstat, scandir = os.readlink, os.lstat, os.scandir
    bus = root + "/bus/pci/devices"
    os.path.realpath(bus, strict=True)
    with scandir(bus) as it:
        names = sorted(e.name for e in it)
    seen: set[str] = set()
    pf_netdevs: set[str] = set()
    for name in names:
        if name in seen:
            continue
        path = os.path.realpath(f"{bus}/{name}", strict=True)
        try:
            lstat(path + "/sriov_totalvfs")
        except FileNotFoundError:
            continue
        with scandir(path) as it:
            entries = {e.name: e.is_file(follow_symlinks=False) for e in it}
        for attr in ("sriov_totalvfs", "vendor", "device", "class",
                     "numa_node"):
            if attr in entries:
                _read(f"{path}/{attr}")
        readlink(path + "/driver")
        readlink(path + "/iommu_group")
        netdev = None
        if "net" in entries:
            with scandir(path + "/net") as it:
                netdevs = [e.name for e in it if e.is_dir(
                    follow_symlinks=False)]
            pf_netdevs.update(netdevs)
            netdev = min(netdevs) if netdevs else None
        _read(path + "/sriov_numvfs")
        if netdev is not None:
            for attr in ("address", "operstate", "phys_port_name",
                         "phys_switch_id"):
                file = f"{path}/net/{netdev}/{attr}"
                lstat(file)
                _read(file)
        links = sorted((int(n[6:]), n) for n in entries
                       if n.startswith("virtfn"))
        if not links:
            continue
        for attr in ("sriov_vf_device", "sriov_offset", "sriov_stride"):
            _read(f"{path}/{attr}")
        parent = path.rpartition("/")[0]
        with scandir(parent) as it:
            {e.name: e.is_dir(follow_symlinks=False) for e in it}
        for _, link in links:
            address = readlink(f"{path}/{link}")[3:]
            seen.add(address)
            vf = f"{parent}/{address}"
            lstat(vf + "/numa_node")
            _read(vf + "/numa_node")
            readlink(vf + "/driver")
            readlink(vf + "/iommu_group")
    net = root + "/class/net"
    os.path.realpath(net, strict=True)
    with scandir(net) as it:
        netdev_names = [e.name for e in it]
    for name in netdev_names:
        if name not in pf_netdevs:
            readlink(f"{net}/{name}")


def strace_counts(root: pathlib.Path, what: str) -> dict[str, int] | None:
    """File system calls of one scan or floor, by system call: the run
    minus a run importing the same modules and doing nothing."""
    if not shutil.which("strace"):
        return None
    counts = []
    for run in (what, "none"):
        with tempfile.NamedTemporaryFile("r") as out:
            subprocess.run(
                ["strace", "-f", "-c", "-o", out.name, sys.executable,
                 __file__, "--run", run, str(root)],
                check=True, stdout=subprocess.DEVNULL)
            counts.append(_parse_strace(out.read()))
    return {name: counts[0].get(name, 0) - counts[1].get(name, 0)
            for name in FILE_SYSCALLS
            if counts[0].get(name, 0) - counts[1].get(name, 0)}


def _parse_strace(text: str) -> dict[str, int]:
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(fields) >= 5 and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    return calls


def audited(root: pathlib.Path) -> int:
    """open, os.scandir and os.listdir audit events of one scan."""
    events = [0]
    active = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active[0] and event in ("open", "os.scandir", "os.listdir"):
            events[0] += 1

    sys.addaudithook(hook)  # cannot be removed: switched off below
    try:
        sysfs_scan.scan(root)
    finally:
        active[0] = False
    return events[0]


def deep_size(devices: tuple[object, ...]) -> int:
    """Bytes held by the records: the tuple of them, each record and each
    value in it, an object shared by several records counted once."""
    seen: set[int] = set()
    total = sys.getsizeof(devices)
    for record in devices:
        total += sys.getsizeof(record)
        for value in record:  # type: ignore[attr-defined]
            if value is not None and id(value) not in seen:
                seen.add(id(value))
                total += sys.getsizeof(value)
    return total


def measure(vfs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        build(root, vfs)
        real = os.path.realpath(root)
        result = sysfs_scan.scan(root)  # warm the dentry cache
        floor(real)
        assert len(result.devices) == vfs + PFS and not result.errors, (
            len(result.devices), result.errors[:3])
        scans, floors = [], []
        for _ in range(runs):
            # Interleaved, so both see the same machine load.
            gc.collect()
            start = time.perf_counter()
            sysfs_scan.scan(root)
            scans.append(time.perf_counter() - start)
            gc.collect()
            start = time.perf_counter()
            floor(real)
            floors.append(time.perf_counter() - start)
        del result
        gc.collect()
        tracemalloc.start()
        kept = sysfs_scan.scan(root)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n = len(kept.devices)
        current = deep_size(kept.devices)
        scan_calls = strace_counts(root, "scan")
        floor_calls = strace_counts(root, "floor")
        events = audited(root)
        scan_t, floor_t = statistics.median(scans), statistics.median(floors)
        line = (f"{vfs:>6} VFs: scan {scan_t * 1000:7.1f} ms "
                f"({scan_t / vfs * 1e6:4.1f} us/VF)  floor "
                f"{floor_t * 1000:7.1f} ms ({floor_t / vfs * 1e6:4.1f} "
                f"us/VF)  ratio {scan_t / floor_t:4.2f}  ")
        if scan_calls is not None and floor_calls is not None:
            line += (f"syscalls/VF {sum(scan_calls.values()) / vfs:5.2f} "
                     f"(floor {sum(floor_calls.values()) / vfs:5.2f})  ")
        line += (f"audit events/VF {events / vfs:4.2f}  memory "
                 f"{current / n:4.0f} B/record kept, {peak / n:4.0f} peak")
        print(line, flush=True)
        if scan_calls is not None:
            print("        scan syscalls/VF by call: " + ", ".join(
                f"{name} {count / vfs:.2f}"
                for name, count in sorted(scan_calls.items())), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1024,4096,16384")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--run", choices=("scan", "floor", "none"),
                        help=argparse.SUPPRESS)
    parser.add_argument("root", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        # One scan or floor in this process, for strace to count.
        if args.run == "scan":
            sysfs_scan.scan(args.root)
        elif args.run == "floor":
            floor(os.path.realpath(args.root))
        return 0
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"{PFS} PFs; times are medians of {args.runs} interleaved runs")
    for size in (int(s) for s in args.sizes.split(",")):
        measure(size, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
