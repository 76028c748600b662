"""The clocks a migration lease is timed on: the host's own, read for
real, and how a duration is read from a lease's start."""

import time

import pytest

from pci_passthrough.agent.clock import (
    LeaseClock,
    SystemClock,
    WallClock,
    ahead,
    as_clock,
    elapsed,
    lease_start,
    read_boot_id,
)
from pci_passthrough.fixtures.agent_host import Clock
from pci_passthrough.ledger import LeaseStart


def test_the_system_clock_reads_the_kernels_boot_clock_and_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    clock = SystemClock()
    assert isinstance(clock, LeaseClock)
    assert clock.boot_id() == boot_id
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    # /proc/uptime counts suspended time too, as CLOCK_BOOTTIME does.
    assert abs(clock.boot() - uptime) < 5
    assert abs(clock.wall() - time.time()) < 5
    start = lease_start(clock)
    assert start.boot_id == boot_id
    assert 0 <= elapsed(start, clock) < 5


@pytest.mark.parametrize("text", ["", "not-a-uuid\n",
                                  "0E6C3A51-8A4F-4D0E-9A8E-6F1C2B3D4E5F"])
def test_a_boot_id_that_is_not_a_uuid_disables_the_boot_clock(tmp_path,
                                                              text):
    path = tmp_path / "boot_id"
    path.write_text(text)
    clock = SystemClock(str(path))
    assert clock.boot_id() is None and clock.boot() is None
    assert lease_start(clock).boot is None
    assert read_boot_id(str(tmp_path / "missing")) is None


def test_a_plain_callable_is_a_wall_clock():
    clock = as_clock(lambda: 5000.0)
    assert isinstance(clock, WallClock)
    assert lease_start(clock) == LeaseStart(5000.0)
    assert elapsed(LeaseStart(4000.0, 10.0, "x"), clock) == 1000.0
    stepped = Clock()
    assert as_clock(stepped) is stepped


def test_a_duration_is_read_on_the_boot_clock_within_its_boot():
    clock = Clock()
    start = lease_start(clock)
    clock.step(7200)
    clock.now += 10
    assert elapsed(start, clock) == 10
    assert ahead(start, clock) == 0
    clock.step(-10 * 7200)
    assert elapsed(start, clock) == 10
    assert ahead(start, clock) == 7200 * 9 - 10
    # Another boot: the wall clock, which cannot time a start ahead.
    clock.reboot(downtime=100)
    assert elapsed(start, clock) is None
    clock.step(10 * 7200)
    assert elapsed(start, clock) == 7200 + 10 + 100
    # A start from a ledger without boot clock readings.
    assert elapsed(LeaseStart(start.wall), clock) == 7200 + 10 + 100


def test_time_passing_never_moves_the_clock_back():
    clock = Clock()
    with pytest.raises(ValueError, match="step"):
        clock.now -= 1
