"""Leases on its own: a tracker on a real ledger and sysfs tree, a clock
the test moves, what the network driver says of the instances' domains,
and a release that frees the claims (the networks and VF netdevs are
Ports' part, tested through HostAgent)."""

import pytest

from pci_passthrough import exception
from pci_passthrough.agent import OperationGate
from pci_passthrough.agent.clock import lease_start
from pci_passthrough.agent.leases import Leases
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import Clock
from pci_passthrough.ledger import Ledger
from pci_passthrough.metrics import Metrics, exposition
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import DomainPresence
from pci_passthrough.tracker import HostTracker

TIMEOUT = 600
INCOMING = "4f1a2b3c-0000-4000-8000-000000000001"
OUTGOING = "4f1a2b3c-0000-4000-8000-000000000002"
PORT = [PortRequest(0, flavor="net1")]


class Parts:
    """A tracker with one incoming and one outgoing instance, leased at
    the clock's time, and Leases over it."""

    def __init__(self, tmp_path):
        root = tmp_path / "sys"
        st.build_tree(root, st.HostLayout((st.PfLayout(
            "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0"),)))
        specs = devspec.parse_device_specs(
            ['{"vendor_id": "8086", "physical_network": "physnet1"}'])
        flavor_set = flavors.parse_flavors(
            ['{"name": "net1", "physical_network": "physnet1"}'],
            known_tags=specs.tag_names, special_attributes=[])
        self.ledger = Ledger(tmp_path / "db")
        self.tracker = HostTracker(flavor_set, self.ledger)
        self.tracker.update_devices(sysfs_scan.scan(root), specs)
        self.clock = Clock()
        self.tracker.claim(INCOMING, PORT, state=PortState.INCOMING,
                           lease_started=lease_start(self.clock))
        self.tracker.claim(OUTGOING, PORT)
        self.tracker.transition(OUTGOING, PortState.PLUGGED)
        self.tracker.transition(OUTGOING, PortState.OUTGOING,
                                lease_started=lease_start(self.clock))
        self.released = []
        self.failing = False
        self.metrics = Metrics()
        #: What the driver says of each instance's domain.
        self.domains = {}
        self.leases = self.new_leases(OperationGate())

    def new_leases(self, gate):
        return Leases(gate=gate, tracker=self.tracker, ledger=self.ledger,
                      release=self.release, domains=self.domain,
                      metrics=self.metrics, clock=self.clock,
                      timeout=TIMEOUT)

    def domain(self, instance):
        answer = self.domains.get(instance, DomainPresence.ABSENT)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def release(self, instance):
        if self.failing:
            # A network the driver cannot delete: not producible here.
            raise exception.NetworkDriverError(
                network="n", instance=instance, port=0, reason="busy")
        self.released.append(instance)
        return self.tracker.free(instance)

    def counted(self, sample):
        """A counter's value in the exposition: ``sample`` is its name
        with its labels."""
        (value,) = [text.removeprefix(f"pci_passthrough_{sample} ")
                    for text in exposition(self.metrics).splitlines()
                    if text.startswith(f"pci_passthrough_{sample} ")]
        return float(value)


@pytest.fixture
def parts(tmp_path):
    p = Parts(tmp_path)
    yield p
    p.tracker.close()


def test_a_lease_expires_when_the_timeout_has_passed_not_before(parts):
    parts.clock.now += TIMEOUT - 1
    assert parts.leases.expired(PortState.INCOMING) == []
    assert parts.leases.expire_all() == []
    parts.clock.now += 1
    assert parts.leases.expired(PortState.INCOMING) == [INCOMING]
    assert parts.leases.expired(PortState.OUTGOING) == [OUTGOING]


def test_only_incoming_leases_are_ended_and_counted(parts):
    parts.clock.now += TIMEOUT
    assert parts.leases.expire_all() == [INCOMING]
    assert parts.released == [INCOMING]
    assert parts.tracker.allocations(INCOMING) == []
    # The source's guest may still run: its ports stay, for doctor.
    assert [a.state for a in parts.tracker.allocations(OUTGOING)] == [
        PortState.OUTGOING]
    expired = 'incoming_migration_ends_total{outcome="expired"}'
    assert parts.counted(expired) == 1
    assert parts.counted("releases_total") == 1
    assert parts.leases.expire_all() == []
    assert parts.counted(expired) == 1


def test_a_confirmed_migration_is_not_ended(parts):
    parts.clock.now += TIMEOUT
    parts.tracker.transition(INCOMING, PortState.PLUGGED)
    assert parts.leases.expire(INCOMING) is False
    assert parts.released == []


def test_a_release_that_fails_keeps_the_lease_for_the_next_call(parts):
    parts.clock.now += TIMEOUT
    parts.failing = True
    assert parts.leases.expire_all() == []
    assert [a.state for a in parts.tracker.allocations(INCOMING)] == [
        PortState.INCOMING]
    parts.failing = False
    assert parts.leases.expire_all() == [INCOMING]


def test_a_closed_gate_refuses_expiry(parts):
    gate = OperationGate()
    leases = parts.new_leases(gate)
    gate.close()
    with pytest.raises(exception.AgentClosed,
                       match=r"HostAgent\.expire_leases"):
        leases.expire_all()


@pytest.mark.parametrize("answer", [
    DomainPresence.PRESENT, DomainPresence.UNKNOWN,
    # A driver plugin that fails to answer.
    RuntimeError("plugin bug")])
def test_only_a_domain_known_gone_lets_an_incoming_lease_end(parts,
                                                            answer):
    parts.clock.now += TIMEOUT
    parts.domains[INCOMING] = answer
    assert parts.leases.expired(PortState.INCOMING) == []
    assert parts.leases.expire_all() == []
    assert parts.leases.expire(INCOMING) is False
    assert parts.released == []
    # The source's report does not ask the driver.
    parts.domains[OUTGOING] = answer
    assert parts.leases.expired(PortState.OUTGOING) == [OUTGOING]
    parts.domains[INCOMING] = DomainPresence.ABSENT
    assert parts.leases.expire_all() == [INCOMING]


def test_a_domain_that_appears_meanwhile_keeps_the_lease(parts):
    parts.clock.now += TIMEOUT
    assert parts.leases.expired(PortState.INCOMING) == [INCOMING]
    parts.domains[INCOMING] = DomainPresence.PRESENT
    assert parts.leases.expire(INCOMING) is False
    assert parts.released == []


def test_a_lease_ahead_is_restarted_only_while_ahead(parts):
    assert parts.leases.ahead() == {}
    parts.clock.step(-3600)
    assert parts.leases.ahead() == {INCOMING: 3600.0, OUTGOING: 3600.0}
    assert parts.leases.restart(INCOMING)
    assert parts.leases.ahead() == {OUTGOING: 3600.0}
    assert not parts.leases.restart(INCOMING)
    parts.clock.now += TIMEOUT - 1
    assert parts.leases.expired(PortState.INCOMING) == []
    parts.clock.now += 1
    assert parts.leases.expired(PortState.INCOMING) == [INCOMING]
    parts.tracker.free(OUTGOING)
    assert not parts.leases.restart(OUTGOING)
