"""Two-phase migration claims: incoming leases confirmed, aborted or
expired; the source's outgoing state.  A clock the test controls; libvirt's
test driver."""

import logging

import pytest

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.fixtures.agent_host import AgentHost, Clock
from pci_passthrough.fixtures.standard_host import INTEL_DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import INTEL_FLAVORS as FLAVORS
from pci_passthrough.fixtures.standard_host import INTEL_LAYOUT as LAYOUT
from pci_passthrough.hygiene import NetdevState
from pci_passthrough.model.states import PortState, Repair
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"
PORTS = [PortRequest(0, flavor="net1"), PortRequest(1, flavor="net1")]


class Host(AgentHost):
    def __init__(self, workdir, timeout=None):
        overrides = ({} if timeout is None
                     else {"incoming_migration_timeout": timeout})
        super().__init__(workdir, LAYOUT, device_specs=SPECS,
                         flavors=FLAVORS, clock=Clock(),
                         in_memory_netdevs=True, **overrides)
        self.agent = self.new_agent()

    def states(self, inst=INST):
        return [a.state for a in self.agent.allocations(inst)]

    def networks(self, inst=INST):
        return sorted(n.name() for n in self.conn.listAllNetworks(0)
                      if inst in n.name())

    def guest_took(self, netdev):
        self.netdevs.states[netdev] = NetdevState(
            netdev=netdev, mac="52:54:00:12:34:56", mtu=9000, up=False)


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h


def test_incoming_claims_are_leased_until_confirmed(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    assert host.states() == [PortState.INCOMING] * 2
    assert len(host.networks()) == 2
    host.clock.now += 1000
    host.agent.complete_incoming_migration(INST)
    assert host.states() == [PortState.PLUGGED] * 2
    # Confirmed: the lease is gone and never expires.
    host.clock.now += 10_000
    host.agent.refresh()
    assert host.states() == [PortState.PLUGGED] * 2
    assert len(host.networks()) == 2
    # Idempotent.
    host.agent.complete_incoming_migration(INST)
    assert host.states() == [PortState.PLUGGED] * 2


def test_an_unconfirmed_lease_expires_at_refresh(host, caplog):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += 1799
    host.agent.refresh()
    assert host.states() == [PortState.INCOMING] * 2
    host.clock.now += 1
    with caplog.at_level(logging.WARNING):
        host.agent.refresh()
    assert host.agent.allocations(INST) == []
    assert host.networks() == []
    assert any(f"Incoming migration of instance {INST} was not confirmed "
               f"within 1800 s" in r.getMessage() for r in caplog.records)
    with pytest.raises(exception.MigrationNotPrepared,
                       match="its lease expired after 1800 s"):
        host.agent.complete_incoming_migration(INST)
    # The devices are free again.
    assert host.agent.claim(INST, PORTS)


def test_a_repeated_prepare_does_not_extend_the_lease(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += 1000
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += 800
    assert host.agent.expire_leases() == [INST]


def test_the_lease_survives_a_restart_of_the_agent(tmp_path):
    host = Host(tmp_path / "h", timeout=60)
    try:
        host.agent.prepare_incoming_migration(INST, PORTS)
        host.agent.close()
        host.clock.now += 30
        host.agent = host.new_agent()
        assert host.report.expired_leases == ()
        assert host.states() == [PortState.INCOMING] * 2
        # The lease runs from the prepare, not from the restart.
        host.clock.now += 30
        assert host.agent.refresh().expired_leases == (INST,)
        assert host.agent.allocations(INST) == []
        assert host.networks() == []
    finally:
        host.close()


def test_refresh_reports_the_leases_it_expired(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.clock.now += 1000
    host.agent.prepare_incoming_migration(OTHER, PORTS[:1])
    host.clock.now += 799
    assert host.agent.refresh().expired_leases == ()
    host.clock.now += 1
    report = host.agent.refresh()
    assert report.expired_leases == (INST,)
    assert host.states(OTHER) == [PortState.INCOMING]
    assert host.agent.refresh().expired_leases == ()  # released once
    host.clock.now += 1000
    assert host.agent.refresh().expired_leases == (OTHER,)
    assert host.agent.allocations() == []


def test_a_confirmed_or_aborted_migration_is_never_reported_expired(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.agent.prepare_incoming_migration(OTHER, PORTS[:1])
    host.agent.complete_incoming_migration(INST)
    host.agent.abort_incoming_migration(OTHER)
    host.clock.now += 10_000
    assert host.agent.refresh().expired_leases == ()
    assert host.states() == [PortState.PLUGGED] * 2


def test_start_releases_the_leases_that_expired_while_down(host, caplog):
    host.agent.claim(OTHER, PORTS[:1])
    (kept,) = host.agent.plug(OTHER)
    ports = host.agent.prepare_incoming_migration(INST, PORTS)
    before = {p.netdev: host.netdevs.states[p.netdev] for p in ports}
    for port in ports:
        host.guest_took(port.netdev)
    host.agent.close()
    # While the host is down libvirtd loses a network of each instance.
    for name in (ports[0].network, kept.network):
        net = host.conn.networkLookupByName(name)
        net.destroy()
        net.undefine()
    host.clock.now += 1800
    with caplog.at_level(logging.WARNING):
        host.agent = host.new_agent()
    report = host.report
    assert report.expired_leases == (INST,)
    # Expired first, then reconciled: the expired instance's missing
    # network is not restored only to be deleted, the other one is.
    assert [(a.action, a.network) for a in report.actions] == [
        (Repair.RESTORED, kept.network)]
    assert report.allocations == 1
    assert host.networks() == [] and host.agent.allocations(INST) == []
    assert host.networks(OTHER) == [kept.network]
    # Its VFs got back the state journalled before their plug.
    assert {n: host.netdevs.states[n] for n in before} == before
    journals = host.agent.vf_journals()
    assert not {p.address for p in ports} & set(journals)
    assert any(f"Incoming migration of instance {INST} was not confirmed "
               f"within 1800 s" in r.getMessage() for r in caplog.records)
    # Its devices are claimable again, and nothing is left to repair.
    assert host.agent.doctor().findings == ()
    assert len(host.agent.claim(INST, PORTS)) == 2


def test_abort_frees_the_incoming_claims(host):
    host.agent.prepare_incoming_migration(INST, PORTS)
    host.agent.abort_incoming_migration(INST)
    assert host.agent.allocations(INST) == []
    assert host.networks() == []
    with pytest.raises(exception.MigrationNotPrepared):
        host.agent.complete_incoming_migration(INST)


def test_outgoing_migration_states_and_no_expiry_on_the_source(host):
    host.agent.claim(INST, PORTS)
    host.agent.plug(INST)
    host.agent.begin_outgoing_migration(INST)
    assert host.states() == [PortState.OUTGOING] * 2
    # A plug while outgoing keeps the state (the networks re-ensured).
    host.agent.plug(INST)
    assert host.states() == [PortState.OUTGOING] * 2
    host.clock.now += 10_000
    host.agent.refresh()  # the source never frees on its own
    assert host.states() == [PortState.OUTGOING] * 2
    host.agent.abort_outgoing_migration(INST)
    assert host.states() == [PortState.PLUGGED] * 2
    assert host.agent.doctor().findings == ()
    host.agent.begin_outgoing_migration(INST)
    host.agent.complete_outgoing_migration(INST)
    assert host.agent.allocations(INST) == [] and host.networks() == []


def test_outgoing_of_an_instance_without_claims_is_nothing(host):
    assert host.agent.begin_outgoing_migration(INST) == []
    assert host.agent.abort_outgoing_migration(INST) == []


def test_the_timeout_option_is_checked(tmp_path):
    host = Host(tmp_path / "h")
    try:
        with pytest.raises(ValueError):
            host.conf.set_override("incoming_migration_timeout", 0,
                                   group="pci_passthrough")
    finally:
        host.close()



class Unreachable(LibvirtMacvtapDriver):
    """libvirtd refusing deletes for a while: a fault the test driver
    cannot produce on demand."""

    down = True

    def delete_network(self, name):
        if self.down:
            raise exception.NetworkOperationFailed(
                network=name, operation="delete", reason="libvirtd down",
                code=1)
        return super().delete_network(name)


def test_an_expiry_that_fails_is_retried_at_the_next_refresh(tmp_path,
                                                             caplog):
    host = Host(tmp_path / "h")
    driver = Unreachable(host.conf, connection=host.conn)
    agent = HostAgent(host.conf, network_driver=driver, clock=host.clock)
    host.agents.append(agent)
    try:
        agent.start()
        agent.prepare_incoming_migration(INST, PORTS)
        host.clock.now += 1800
        with caplog.at_level(logging.ERROR):
            report = agent.refresh()  # the scan is reported all the same
        assert report.vanished_in_use == () and report.expired_leases == ()
        assert any("Cannot end the expired incoming migration" in
                   r.getMessage() for r in caplog.records)
        assert [a.state for a in agent.allocations(INST)] == [
            PortState.INCOMING] * 2
        driver.down = False
        assert agent.refresh().expired_leases == (INST,)
        assert agent.allocations(INST) == [] and host.networks() == []
    finally:
        host.close()


def test_a_start_whose_expiry_fails_leaves_claims_and_networks_together(
        tmp_path, caplog):
    host = Host(tmp_path / "h")
    try:
        ports = host.agent.prepare_incoming_migration(INST, PORTS)
        host.agent.close()
        net = host.conn.networkLookupByName(ports[1].network)
        net.destroy()
        net.undefine()
        host.clock.now += 1800
        driver = Unreachable(host.conf, connection=host.conn)
        agent = HostAgent(host.conf, network_driver=driver,
                          netdev_access=host.netdevs, clock=host.clock)
        host.agents.append(agent)
        with caplog.at_level(logging.ERROR):
            report = agent.start()
        assert report.expired_leases == ()
        assert any("Cannot end the expired incoming migration" in
                   r.getMessage() for r in caplog.records)
        # Still leased, so still networked: reconcile restored the
        # missing network rather than leave a claim without it.
        assert [a.state for a in agent.allocations(INST)] == [
            PortState.INCOMING] * 2
        assert [(a.action, a.network) for a in report.actions] == [
            (Repair.RESTORED, ports[1].network)]
        assert host.networks() == sorted(p.network for p in ports)
        driver.down = False
        assert agent.refresh().expired_leases == (INST,)
        assert host.networks() == [] and agent.allocations() == []
    finally:
        host.close()


def test_an_incoming_claim_freed_midway_leaves_no_network(host):
    # Another process (the CLI's free) frees the instance while its
    # incoming networks are being defined.
    other = host.new_agent()

    class FreedMidway(LibvirtMacvtapDriver):
        def ensure_network(self, spec):
            changed = super().ensure_network(spec)
            if spec.name.endswith("-0"):
                other.release(INST)
            return changed

    agent = HostAgent(host.conf, network_driver=FreedMidway(
        host.conf, connection=host.conn), clock=host.clock)
    host.agents.append(agent)
    agent.start()
    with pytest.raises(exception.InvalidStateTransition,
                       match="cannot go from state none to incoming"):
        agent.prepare_incoming_migration(INST, PORTS)
    assert host.networks() == [] and agent.allocations() == []
