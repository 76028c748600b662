"""Ledger benchmark: opening and loading a ledger of many rows.

Every load validates every row (state, address, instance, port index,
request JSON, netdev, row version), so this prints what that costs: the
median over --repeat runs of opening a ledger (open: schema checks, row
validation), of loading its rows again (records()), and of a read-only
open and load as the explain and claims commands do.  Rows look like a
real host's: four ports per instance, each with its own MAC.

    python tools/bench/bench_ledger.py [--rows 1024,16384] [--repeat 15]
"""

import argparse
import inspect
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

from pci_passthrough.claims import PortRequest
from pci_passthrough.ledger import CLAIMED, PLUGGED, Ledger, LedgerRecord


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


def median_ms(fn: "object", repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(count: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "claims.db"
        with Ledger(path) as ledger, ledger.transaction() as txn:
            txn.add(rows(count))

        def open_close() -> None:
            Ledger(path).close()

        ledger = Ledger(path)

        def load() -> None:
            assert len(ledger.records()) == count

        # records() may answer from what the open validated; a load after
        # another connection's commit is what the tracker's sync pays.
        other = Ledger(path)
        first = rows(1)[0].instance_uuid
        reloads = []
        for n in range(repeat):
            with other.transaction() as txn:
                txn.set_state(first, (PLUGGED, CLAIMED)[n % 2])
            start = time.perf_counter()
            assert len(ledger.records()) == count
            reloads.append(time.perf_counter() - start)
        other.close()

        figures = [f"open {median_ms(open_close, repeat):.1f} ms",
                   f"records() {median_ms(load, repeat):.1f} ms",
                   f"records() after another's commit "
                   f"{statistics.median(reloads) * 1000:.1f} ms"]
        ledger.close()
        if "readonly" in inspect.signature(Ledger).parameters:
            def readonly() -> None:
                with Ledger(path, readonly=True) as ro:  # type: ignore
                    assert len(ro.records()) == count

            figures.append(f"read-only open+records() "
                           f"{median_ms(readonly, repeat):.1f} ms")
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
