"""Migration leases against clock steps, restarts and reboots, and the
incoming domain libvirt knows of: a lease never ends while its domain
exists, and its duration is read on the boot clock while the host has
not rebooted.  HostAgent on libvirt's test driver, with a clock the
test steps (the fixtures' Clock)."""

import logging

import pytest

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures.agent_host import AgentHost, Clock
from pci_passthrough.fixtures.standard_host import INTEL_DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import INTEL_FLAVORS as FLAVORS
from pci_passthrough.fixtures.standard_host import INTEL_LAYOUT as LAYOUT
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import DomainPresence
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.network.noop import NoopDriver

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"
PORTS = [PortRequest(0, flavor="net1"), PortRequest(1, flavor="net1")]
TIMEOUT = 1800
HOURS_2 = 2 * 3600
YEARS_10 = 10 * 365 * 86400


class Host(AgentHost):
    def __init__(self, workdir):
        super().__init__(workdir, LAYOUT, device_specs=SPECS,
                         flavors=FLAVORS, clock=Clock(),
                         in_memory_netdevs=True)
        self.agent = self.new_agent()

    def states(self, inst=INST):
        return [a.state for a in self.agent.allocations(inst)]

    def restart(self):
        """A new agent on the same ledger and libvirt; its StartReport
        in ``report``."""
        self.agent.close()
        self.agent = self.new_agent()

    def arrive(self, inst=INST):
        """The incoming guest's domain, running here: what libvirt shows
        on the destination from the start of a live migration."""
        return self.conn.createXML(
            f"<domain type='test'><name>guest-{inst[:8]}</name>"
            f"<uuid>{inst}</uuid><memory>65536</memory>"
            f"<os><type>hvm</type></os></domain>", 0)


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h


def kinds(report):
    return [(f.kind, f.subject) for f in report.findings]


# -- the wall clock stepped ---------------------------------------------------

def test_a_wall_clock_stepped_forward_does_not_end_a_lease(host):
    held = {a.address for a in host.agent.prepare_incoming_migration(
        INST, PORTS)}
    host.clock.now += 1
    host.clock.step(HOURS_2)
    assert host.agent.refresh().expired_leases == ()
    assert host.states() == [PortState.INCOMING] * 2
    assert host.agent.doctor().findings == ()
    host.agent.complete_incoming_migration(INST)
    assert host.states() == [PortState.PLUGGED] * 2
    # The next guest gets neither of the migrated guest's VFs.
    (other,) = host.agent.claim(OTHER, PORTS[:1])
    assert other.address not in held


def test_a_lease_still_ends_on_the_boot_clock_after_a_step(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.step(-HOURS_2)
    host.clock.now += TIMEOUT - 1
    assert host.agent.refresh().expired_leases == ()
    host.clock.now += 1
    assert host.agent.refresh().expired_leases == (INST,)
    assert host.agent.allocations(INST) == []


def test_a_lease_started_ten_years_ahead_ends_and_is_reported(host):
    host.clock.step(YEARS_10)
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.step(-YEARS_10)
    report = host.agent.doctor()
    assert kinds(report) == [(FindingKind.LEASE_AHEAD, f"instance {INST}")]
    (ahead,) = report.findings
    assert "ahead of the wall clock" in ahead.problem
    assert "claims and networks stay" in ahead.repair
    host.clock.now += TIMEOUT
    # Timed on the boot clock, it ran out: its release is the repair.
    assert kinds(host.agent.doctor()) == [
        (FindingKind.LEASE_EXPIRED, f"instance {INST}")]
    assert host.agent.refresh().expired_leases == (INST,)


# -- restarts and reboots -----------------------------------------------------

def test_a_restart_on_the_same_boot_keeps_counting(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += TIMEOUT - 1
    host.clock.step(-YEARS_10)
    host.restart()
    assert host.report.expired_leases == ()
    host.clock.now += 1
    assert host.agent.refresh().expired_leases == (INST,)


def test_after_a_reboot_the_wall_clock_times_the_lease(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.agent.close()
    host.clock.reboot(downtime=TIMEOUT - 60)
    host.restart()
    assert host.report.expired_leases == ()
    host.clock.now += 60
    assert host.agent.refresh().expired_leases == (INST,)


def test_after_a_reboot_a_lease_ahead_is_kept_reported_and_restarted(host):
    host.clock.step(YEARS_10)
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.agent.close()
    host.clock.reboot()
    host.clock.step(-YEARS_10)
    host.restart()
    host.clock.now += 10 * TIMEOUT
    # Neither clock can time it: kept, and reported.
    assert host.agent.refresh().expired_leases == ()
    assert kinds(host.agent.doctor()) == [
        (FindingKind.LEASE_AHEAD, f"instance {INST}")]
    (fixed,) = host.agent.doctor(fix=True).findings
    assert fixed.fixed
    assert host.states() == [PortState.INCOMING] * 2
    assert host.agent.doctor().findings == ()
    # Restarted from the repair, it runs its full time again.
    host.clock.now += TIMEOUT - 1
    assert host.agent.refresh().expired_leases == ()
    host.clock.now += 1
    assert host.agent.refresh().expired_leases == (INST,)


# -- the incoming domain ------------------------------------------------------

@pytest.mark.parametrize("paused", [False, True])
def test_a_lease_whose_domain_exists_never_ends(host, paused):
    host.agent.prepare_incoming_migration(INST, PORTS)
    dom = host.arrive()
    if paused:
        dom.suspend()
    host.clock.now += 10 * TIMEOUT
    host.clock.step(HOURS_2)
    assert host.agent.refresh().expired_leases == ()
    # Kept, and said: nova neither confirmed nor aborted the migration.
    (overdue,) = host.agent.doctor(fix=True).findings
    assert overdue.kind is FindingKind.LEASE_OVERDUE
    assert not overdue.fixable and not overdue.fixed
    assert "domain exists here" in overdue.problem
    assert host.states() == [PortState.INCOMING] * 2
    host.restart()
    assert host.report.expired_leases == ()
    # The migration failed: the domain is gone, the lease ends.
    dom.destroy()
    assert host.agent.refresh().expired_leases == (INST,)
    assert host.agent.allocations(INST) == []


def test_doctor_fix_does_not_free_a_lease_ahead_whose_domain_exists(host):
    host.clock.step(YEARS_10)
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.arrive()
    host.clock.reboot()
    host.clock.step(-YEARS_10)
    host.clock.now += 10 * TIMEOUT
    host.restart()
    (fixed,) = host.agent.doctor(fix=True).findings
    assert fixed.kind is FindingKind.LEASE_AHEAD and fixed.fixed
    host.clock.now += 10 * TIMEOUT
    assert host.agent.refresh().expired_leases == ()
    assert kinds(host.agent.doctor(fix=True)) == [
        (FindingKind.LEASE_OVERDUE, f"instance {INST}")]
    assert host.states() == [PortState.INCOMING] * 2
    host.agent.complete_incoming_migration(INST)
    assert host.states() == [PortState.PLUGGED] * 2


def test_an_outgoing_lease_is_timed_on_the_boot_clock(host):
    host.agent.claim(INST, PORTS)
    host.agent.plug(INST)
    host.agent.begin_outgoing_migration(INST)
    host.clock.step(HOURS_2)
    assert host.agent.doctor().findings == ()
    host.clock.now += TIMEOUT
    assert kinds(host.agent.doctor()) == [
        (FindingKind.STALE_OUTGOING, f"instance {INST}")]


def test_another_domain_does_not_keep_the_lease(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.arrive(OTHER)
    host.clock.now += TIMEOUT
    assert host.agent.refresh().expired_leases == (INST,)


def test_libvirt_unreachable_keeps_the_lease(host, tmp_path, caplog):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += TIMEOUT
    # An agent whose libvirt cannot be reached: it cannot tell whether
    # the domain exists, so it keeps the lease.
    host.conf.set_override("libvirt_uri", f"test://{tmp_path}/gone.xml",
                           group="pci_passthrough")
    agent = HostAgent(host.conf, network_driver=LibvirtMacvtapDriver(
        host.conf), netdev_access=host.netdevs, clock=host.clock)
    host.agents.append(agent)
    with caplog.at_level(logging.INFO):
        assert agent.expire_leases() == []
    # Not even tried: its networks are left to the migration's end.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"cannot tell whether the domain of instance {INST} "
               f"exists" in r.getMessage() for r in caplog.records)
    assert [a.state for a in agent.allocations(INST)] == [
        PortState.INCOMING] * 2
    assert host.agent.expire_leases() == [INST]


def test_a_driver_that_cannot_tell_keeps_the_lease_until_aborted(host):
    driver = NoopDriver()
    assert driver.domain_presence(INST) is DomainPresence.UNKNOWN
    agent = host.new_agent(driver)
    agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += 10 * TIMEOUT
    assert agent.refresh().expired_leases == ()
    assert [a.state for a in agent.allocations(INST)] == [
        PortState.INCOMING] * 2
    # Kept, and said.
    assert kinds(agent.doctor(fix=True)) == [
        (FindingKind.LEASE_OVERDUE, f"instance {INST}")]
    agent.abort_incoming_migration(INST)
    assert agent.allocations(INST) == []
    assert agent.doctor().findings == ()
