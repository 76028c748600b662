"""The fleet benchmark in CI size: 100 simulated hosts, one real
Placement, concurrent schedulers, migrations and deletions; its own
checks (no overcommit, Placement == ledgers, special attributes kept,
every 409 resolved) must all pass."""

import pathlib
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.functional, pytest.mark.placement]

BENCH = pathlib.Path(__file__).resolve().parents[3] / "tools" / "bench" / \
    "fleet.py"


def test_fleet_of_100_hosts_passes_its_checks(placement) -> None:
    # The placement fixture only proves the service can run here; the
    # bench starts a server of its own.
    result = subprocess.run(
        [sys.executable, str(BENCH), "--hosts", "100", "--instances",
         "300", "--schedulers", "4", "--nova-sample", "10"],
        capture_output=True, text=True, timeout=1200)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checks:" in result.stdout and ": PASS" in result.stdout
    assert "placed " in result.stdout
