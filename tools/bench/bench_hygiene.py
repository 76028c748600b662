"""VF hygiene and metrics benchmark.

Prints the marginal import cost of the pure netdev_state package, of
its netlink half (pyroute2) and of the metrics module
(prometheus-client), each in a fresh interpreter; the time per journal
written and parsed back; the time of one metrics exposition over many
pools; and, as root, the time to read a veth's state and to restore it
after a change, in a private network namespace that the script removes
again.

    python tools/bench/bench_hygiene.py [--pools 1000] [--rounds 200]
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

from pci_passthrough.hygiene import (
    NetdevState,
    VfState,
    from_json,
    to_json,
)
from pci_passthrough.metrics import Metrics, PoolCounts, exposition


def import_ms(module: str, runs: int = 5) -> float:
    # Marginal cost: the package itself (which imports the agent) is
    # loaded first, as in any process that uses these modules.
    code = (f"import time, pci_passthrough; t = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], check=True,
                                  capture_output=True, text=True).stdout)
             for _ in range(runs)]
    return statistics.median(times) * 1000


def journal_us(rounds: int) -> float:
    state = NetdevState(
        netdev="ens1f0v3", mac="02:00:00:00:03:01", mtu=1500, up=True,
        vf=VfState(pf="ens1f0", index=3, mac="02:00:00:00:03:01",
                   vlan=100, spoof_check=True, trust=False))
    start = time.perf_counter()
    for _ in range(rounds):
        assert from_json(to_json(state), "bench") == state
    return (time.perf_counter() - start) / rounds * 1e6


def exposition_ms(pools: int) -> tuple[float, int]:
    counts = [PoolCounts(f"{i // 256:04x}:{i % 256:02x}:00.0",
                         {"physical_network": f"physnet{i % 4}"},
                         total=64, free=32, held=16, unhealthy=8)
              for i in range(pools)]
    metrics = Metrics(lambda: counts)
    start = time.perf_counter()
    text = exposition(metrics)
    return (time.perf_counter() - start) * 1000, len(text)


def netlink_ms(rounds: int) -> tuple[float, float] | None:
    if os.geteuid() != 0:
        return None
    from pyroute2 import IPRoute
    from pyroute2 import netns as pyroute2_netns

    from pci_passthrough.hygiene import netlink as nl

    name = f"pcipthyg-bench-{secrets.token_hex(3)}"
    pyroute2_netns.create(name)
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            ipr.link("add", ifname="vfa0", kind="veth",
                     peer={"ifname": "vfa0p"})
            index = ipr.link_lookup(ifname="vfa0")[0]
            with nl.links(name) as links:
                journal = links.read("vfa0")
                start = time.perf_counter()
                for _ in range(rounds):
                    links.read("vfa0")
                read = (time.perf_counter() - start) / rounds
                spent = 0.0
                for i in range(rounds):
                    ipr.link("set", index=index,
                             address=f"02:ca:fe:00:{i // 256:02x}:"
                                     f"{i % 256:02x}", mtu=9000)
                    ipr.link("set", index=index, state="up")
                    start = time.perf_counter()
                    links.restore(journal)
                    spent += time.perf_counter() - start
        return read * 1000, spent / rounds * 1000
    finally:
        pyroute2_netns.remove(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    for module in ("pci_passthrough.hygiene",
                   "pci_passthrough.hygiene.netlink",
                   "pci_passthrough.metrics"):
        print(f"import {module} (after pci_passthrough): "
              f"{import_ms(module):.1f} ms")
    print(f"journal to_json + from_json: {journal_us(10000):.1f} us")
    ms, size = exposition_ms(args.pools)
    print(f"metrics exposition, {args.pools} pools: {ms:.1f} ms, "
          f"{size} bytes")
    timed = netlink_ms(args.rounds)
    if timed is None:
        print("netlink read/restore: skipped (needs root)")
    else:
        print(f"netlink read of a veth: {timed[0]:.3f} ms; restore of MAC, "
              f"MTU and admin state: {timed[1]:.3f} ms "
              f"({args.rounds} rounds)")


if __name__ == "__main__":
    main()
