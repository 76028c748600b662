"""Ledger benchmark: opening and loading a ledger of many rows.

Every load validates every row (state, address, instance, port index,
request JSON, netdev, row version), so this prints what that costs,
as the median over --repeat runs: SQLite fetching the rows and nothing
else (the floor), opening a ledger (schema checks, every row validated),
reloading after another connection's commit (only changed rows are
validated again), and a read-only open and load as the explain and
claims commands do.  Rows look like a real host's: four ports per
instance, each with its own MAC.

    python tools/bench/bench_ledger.py [--rows 1024,16384] [--repeat 15]
"""

import argparse
import inspect
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

from pci_passthrough.ledger import CLAIMED, PLUGGED, Ledger, LedgerRecord
from pci_passthrough.model.claims import PortRequest


def rows(count: int) -> list[LedgerRecord]:
    out = []
    for i in range(count):
        instance = str(uuid.UUID(int=i // 4 + 1, version=4))
        port = i % 4
        mac = f"fa:16:3e:{i >> 16 & 0xff:02x}:{i >> 8 & 0xff:02x}:" \
              f"{i & 0xff:02x}"
        request = PortRequest(port, flavor="net1", mac=mac, vlan=100)
        address = f"0000:{i // 256 + 1 & 0xff:02x}:{(i // 8) % 32:02x}." \
                  f"{i % 8}"
        if i >= 256 * 255:
            raise SystemExit("too many rows for this address layout")
        out.append(LedgerRecord(
            instance, port, address, PLUGGED if i % 3 else CLAIMED,
            "net1", request.to_json(), f"p{i // 256}v{i % 256}"))
    return out


class Timer:
    """Median CPU time (this process) and wall time of repeated calls:
    on a shared machine the CPU time is the steadier figure."""

    def __init__(self) -> None:
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def time(self, fn: Callable[[], object]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)

    def __str__(self) -> str:
        return (f"{statistics.median(self.cpu) * 1000:.1f} ms CPU "
                f"({statistics.median(self.wall) * 1000:.1f} ms wall)")


def timed(fn: Callable[[], object], repeat: int) -> Timer:
    timer = Timer()
    for _ in range(repeat):
        timer.time(fn)
    return timer


def measure(count: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "claims.db"
        with Ledger(path) as ledger, ledger.transaction() as txn:
            txn.add(rows(count))

        # The floor: SQLite fetching the rows, nothing built or checked.
        raw = sqlite3.connect(path)
        query = ("SELECT * FROM claims ORDER BY instance_uuid, "
                 "port_index")
        floor = timed(lambda: raw.execute(query).fetchall(), repeat)
        raw.close()
        figures = [f"bare fetch {floor}",
                   f"open {timed(lambda: Ledger(path).close(), repeat)}"]

        # A load after another connection's commit: what the tracker's
        # sync pays (the commit itself is not timed).
        ledger, other = Ledger(path), Ledger(path)
        first = rows(1)[0].instance_uuid
        reload = Timer()
        for n in range(repeat):
            with other.transaction() as txn:
                txn.set_state(first, (PLUGGED, CLAIMED)[n % 2])
            reload.time(ledger.records)
        figures.append(f"records() after another's commit {reload}")
        ledger.close()
        other.close()
        if "readonly" in inspect.signature(Ledger).parameters:
            def readonly() -> None:
                with Ledger(path, readonly=True) as ro:  # type: ignore
                    assert len(ro.records()) == count

            figures.append(f"read-only open+records() "
                           f"{timed(readonly, repeat)}")
    print(f"{count:>6} rows: " + "; ".join(figures), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1024,16384")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for count in args.rows.split(","):
        measure(int(count), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
