"""Start-up benchmark of the pci-passthrough command.

Prints the median wall time (the fastest run, the median CPU time) of N
runs of ``pci-passthrough --help`` and of ``pci-passthrough scan`` on a
small generated tree (one PF, four VFs), beside the interpreter's own
floor (``python -c pass``); then, from ``python -X importtime``, the heaviest
modules scan loads and what the command defers to the commands that
need it (each measured after oslo_config.cfg, which every command loads).

    python tools/bench/bench_startup.py [--runs 20] [--import-runs 5]
"""

import argparse
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from pci_passthrough.fixtures import sysfs_tree

GOAL = 0.15

# Loaded by the commands that need them only; figures after
# oslo_config.cfg.
DEFERRED = ("oslo_log.log", "pci_passthrough.cli.claims",
            "pci_passthrough.agent", "pci_passthrough.demo.run",
            "pci_passthrough.privsep")


def command() -> list[str]:
    """The installed console script, as an operator runs it."""
    script = pathlib.Path(sys.executable).parent / "pci-passthrough"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pci_passthrough.cli.main"]


def run_times(cmds: Sequence[Sequence[str]],
              runs: int) -> list[tuple[list[float], list[float]]]:
    """(wall times, CPU times) of each command, run in turn (round
    robin, so that a change of load on the machine touches every command
    alike). CPU time (user + system of the process) hardly changes with
    the load of a shared machine; wall time is what an operator waits."""
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in cmds]
    for _ in range(runs):
        for cmd, (wall, cpu) in zip(cmds, times, strict=True):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            wall.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime
                       + after.ru_stime - before.ru_stime)
    return times


def import_times(code: str) -> dict[str, tuple[int, int]]:
    """Module -> (depth, cumulative microseconds) from -X importtime."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, check=True)
    found = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split(
            "|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        found[name.strip()] = (depth, int(cumulative))
    return found


def median_import_times(code: str,
                        runs: int) -> dict[str, tuple[int, float]]:
    samples = [import_times(code) for _ in range(runs)]
    result = {}
    for name, (depth, _us) in samples[0].items():
        values = [s[name][1] for s in samples if name in s]
        result[name] = (depth, statistics.median(values) / 1000)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--import-runs", type=int, default=5)
    args = parser.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="pcipt-bench-startup-"))
    try:
        root = tmp / "sys"
        sysfs_tree.build_tree(root, sysfs_tree.HostLayout((
            sysfs_tree.PfLayout("intel-x710", "0000:3b:00.0", numvfs=4,
                                netdev="ens1f0"),)))
        cmd = command()
        scan = [*cmd, "scan", "--sysfs-root", str(root)]
        print(f"start-up, wall time of the process (median and fastest "
              f"of {args.runs} runs; goal <= {GOAL:.2f} s; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        rows = (("python -c pass (interpreter floor)",
                 [sys.executable, "-c", "pass"], False),
                ("pci-passthrough --help", [*cmd, "--help"], True),
                ("pci-passthrough scan (1 PF, 4 VFs)", scan, True))
        all_times = run_times([argv for _, argv, _ in rows], args.runs)
        for (label, _argv, has_goal), (wall, cpu) in zip(
                rows, all_times, strict=True):
            median = statistics.median(wall)
            verdict = ("" if not has_goal else
                       "  ok" if median <= GOAL else "  OVER THE GOAL")
            print(f"  {label:<36} {median:.3f} s  (fastest "
                  f"{min(wall):.3f} s, CPU {statistics.median(cpu):.3f} s)"
                  f"{verdict}")

        code = ("import sys; from pci_passthrough.cli import main; "
                f"sys.argv = ['pci-passthrough', 'scan', '--sysfs-root', "
                f"{str(root)!r}]; main.main()")
        loaded = median_import_times(code, args.import_runs)
        print(f"\nheaviest imports of scan (cumulative ms, median of "
              f"{args.import_runs} runs, top level and one below)")
        heavy = sorted(((ms, name) for name, (depth, ms) in loaded.items()
                        if depth <= 1), reverse=True)[:12]
        for ms, name in heavy:
            print(f"  {ms:7.1f} ms  {name}")

        print("\ndeferred to the commands that need them (cumulative ms "
              "after oslo_config.cfg)")
        for module in DEFERRED:
            times = median_import_times(
                f"import oslo_config.cfg; import {module}",
                args.import_runs)
            ms = times.get(module, (0, 0.0))[1]
            where = "loaded by scan!" if module in loaded else "not by scan"
            print(f"  {ms:7.1f} ms  {module:<28} {where}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
