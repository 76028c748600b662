"""HostAgent memory: claim/release cycles with distinct instance ids.

A long-running nova-compute sees every instance id once.  The benchmark
runs ``--cycles`` claim + release cycles on a HostAgent (real sysfs tree,
real SQLite ledger, the noop network driver so that libvirt's cost does
not hide the agent's), each with a new instance id, and prints the RSS
growth after a warm-up (goal: at most 5 MiB for 200,000 cycles) and the
per-cycle time.

    python tools/bench/bench_agent_memory.py [--cycles 200000]
"""

import argparse
import gc
import pathlib
import sys
import tempfile
import time
import uuid

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.network.noop import NoopDriver

SPECS = ['{"vendor_id": "8086", "physical_network": "physnet1"}']
FLAVORS = ['{"name": "net1", "physical_network": "physnet1"}']
WARMUP = 2_000


def rss_kib() -> int:
    """Resident set size now, from /proc (Linux)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(cycles: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        st.build_tree(work / "sys", st.HostLayout((st.PfLayout(
            "intel-e810", "0000:3b:00.0", numvfs=8, netdev="ens1f0"),)))
        conf = host_conf(work, device_specs=SPECS, flavors=FLAVORS,
                         network_driver="noop")
        ports = [PortRequest(0, flavor="net1", mac="52:54:00:00:00:01"),
                 PortRequest(1, flavor="net1", vlan=100)]
        with HostAgent(conf, network_driver=NoopDriver()) as agent:
            agent.start()

            def cycle() -> None:
                inst = str(uuid.uuid4())
                agent.claim(inst, ports)
                agent.release(inst)

            for _ in range(WARMUP):
                cycle()
            gc.collect()
            before = rss_kib()
            start = time.perf_counter()
            for _ in range(cycles):
                cycle()
            elapsed = time.perf_counter() - start
            gc.collect()
            after = rss_kib()
    print(f"{cycles:,} claim/release cycles (2 ports, distinct instance "
          f"ids): RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
          f"growth {(after - before) / 1024:.2f} MiB (goal <= 5 MiB); "
          f"{elapsed / cycles * 1e6:.0f} us per cycle", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=200_000)
    args = parser.parse_args()
    run(args.cycles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
