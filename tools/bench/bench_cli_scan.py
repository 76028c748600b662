"""``pci-passthrough scan --format json`` as operators run it, beside the
library call it wraps.

For a generated tree of 4,096 VFs (16 Intel E810 PFs, as bench_scan.py
builds it) and a config file whose device_spec tags every VF, measured
in the same run, interleaved:

- library: sysfs_scan.scan() alone;
- main(): the command in this process (``cli.main.main``), its JSON
  written to /dev/null: parsing, the scan, the device_spec matching, the
  report and its output, without the interpreter's start-up;
- command: the installed console script in a subprocess, its JSON read
  from a pipe, as ``pci-passthrough scan --format json | jq`` runs it,
  twice: with a buffered standard output, and with PYTHONUNBUFFERED=1
  (as container images and service units often set it), where every
  write() of the text stream is a system call;

wall time and CPU time (the child's for the command).

Then the document's size and how many write() calls the command makes
to its standard output to print it.

    python tools/bench/bench_cli_scan.py [--vfs 4096] [--runs 7]
"""

import argparse
import contextlib
import gc
import io
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from bench_scan import build
from bench_startup import command

from pci_passthrough.cli import main as cli_main
from pci_passthrough.discovery import sysfs_scan

SPEC = '{"vendor_id": "8086", "physical_network": "physnet1"}'


class CountingSink(io.StringIO):
    """A text stream that counts the write() calls made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def in_process(argv: list[str]) -> None:
    with open(os.devnull, "w") as devnull, \
            contextlib.redirect_stdout(devnull):
        code = cli_main.main(argv)
    assert code == 0, code


def subprocess_run(cmd: list[str], env: dict[str, str],
                   cpu: list[float]) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env,
                          check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime
               + after.ru_stime - before.ru_stime)
    assert proc.stdout.endswith(b"}\n")


def timed(fn: Callable[[], object], cpu: list[float]) -> float:
    """The wall time of ``fn()``; its CPU time (this process's, children
    not counted) appended to ``cpu``."""
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def measure(vfs: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pcipt-bench-cli-") as tmp:
        root = pathlib.Path(tmp) / "sys"
        build(root, vfs)
        conf = pathlib.Path(tmp) / "pci.conf"
        conf.write_text(f"[pci_passthrough]\ndevice_spec = {SPEC}\n")
        argv = ["--config-file", str(conf), "scan", "--format", "json",
                "--sysfs-root", str(root)]
        cmd = [*command(), *argv]
        buffered = {k: v for k, v in os.environ.items()
                    if k != "PYTHONUNBUFFERED"}
        unbuffered = {**buffered, "PYTHONUNBUFFERED": "1"}
        # Warm the dentry cache and the imports.
        assert len(sysfs_scan.scan(root).devices) > vfs
        in_process(argv)
        library: list[float] = []
        main_times: list[float] = []
        walls: list[float] = []
        walls_unbuffered: list[float] = []
        lib_cpu: list[float] = []
        main_cpu: list[float] = []
        cmd_cpu: list[float] = []
        unbuffered_cpu: list[float] = []
        for _ in range(runs):
            # Interleaved, so all of them see the same machine load.
            library.append(timed(lambda: sysfs_scan.scan(root), lib_cpu))
            main_times.append(timed(lambda: in_process(argv), main_cpu))
            walls.append(timed(
                lambda: subprocess_run(cmd, buffered, cmd_cpu), []))
            walls_unbuffered.append(timed(
                lambda: subprocess_run(cmd, unbuffered, unbuffered_cpu),
                []))
        sink = CountingSink()
        with contextlib.redirect_stdout(sink):
            cli_main.main(argv)
        size = len(sink.getvalue().encode())

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:7.1f} ms"

    lib = statistics.median(lib_cpu)
    print(f"{vfs} VFs, wall (CPU) time:")
    print(f"  library scan()     {ms(library)} ({ms(lib_cpu).strip()})")
    print(f"  main() in process  {ms(main_times)} ({ms(main_cpu).strip()}"
          f", {statistics.median(main_cpu) / lib:4.2f} x the library's)")
    for label, wall, cpu in (
            ("command", walls, cmd_cpu),
            ("command, unbuffered", walls_unbuffered, unbuffered_cpu)):
        print(f"  {label:<19}{ms(wall)} ({ms(cpu).strip()}, "
              f"{statistics.median(cpu) / lib:4.2f} x the library's)")
    print(f"  output: {size / 1e6:.2f} MB in {sink.writes} write() calls")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vfs", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load "
          f"average {os.getloadavg()[0]:.1f}; medians of {args.runs} "
          f"interleaved runs")
    measure(args.vfs, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
