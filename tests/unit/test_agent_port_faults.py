"""The per-port calls under faults: all or nothing, and a crash part-way
converges once the call is repeated, as for the instance calls
(test_agent_faults.py).  Driver faults come from the real driver failing
at a chosen step on libvirt's test driver; a crash is an exception no
step catches (KeyboardInterrupt) raised where the process would die."""

import uuid

import pytest
from test_agent_faults import Boom, failing_driver

from pci_passthrough import PortRequest, exception
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.netdevs import MemoryNetdevs
from pci_passthrough.ledger.transaction import LedgerTransaction
from pci_passthrough.model.states import PortState
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.tracker import HostTracker

PREFIX = "pcipt-"


class Host(AgentHost):
    def networks(self) -> list[str]:
        return sorted(n.name() for n in self.conn.listAllNetworks(0)
                      if n.name().startswith(PREFIX))


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h", in_memory_netdevs=True) as h:
        yield h


def port(port_id, flavor="net1"):
    return PortRequest(0, flavor=flavor, port_id=port_id)


def attached(agent, inst, n=2):
    """An instance running with ``n`` plugged ports; their UUIDs."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    agent.claim(inst, [port(i) for i in ids])
    agent.plug(inst)
    return ids


@pytest.mark.parametrize("step", ["define", "create", "autostart"])
def test_a_failed_plug_port_removes_only_its_network(host, step):
    inst = new_uuid()
    agent = host.new_agent(failing_driver(
        host.conf, host.conn, network=f"{PREFIX}{inst}-2", step=step))
    ids = attached(agent, inst)
    new = str(uuid.uuid4())
    agent.claim_port(inst, port(new))
    with pytest.raises(exception.NetworkDriverError,
                       match=f"{PREFIX}{inst}-2 for instance {inst} port 2"):
        agent.plug_port(inst, new)
    # The running ports' networks stay; the new port stays claimed for
    # the caller to release or plug again.
    assert host.networks() == [f"{PREFIX}{inst}-0", f"{PREFIX}{inst}-1"]
    states = {a.port_id: a.state for a in agent.allocations(inst)}
    assert states == {ids[0]: PortState.PLUGGED, ids[1]: PortState.PLUGGED,
                      new: PortState.CLAIMED}
    assert agent.release_port(inst, new).port_index == 2
    assert len(agent.allocations(inst)) == 2


def test_a_release_port_whose_network_cannot_go_frees_nothing(host):
    class BrokenDelete(LibvirtMacvtapDriver):
        def delete_network(self, name):
            raise Boom("cannot delete")

    inst = new_uuid()
    agent = host.new_agent(BrokenDelete(host.conf, connection=host.conn))
    ids = attached(agent, inst)
    with pytest.raises(exception.NetworkDriverError,
                       match=f"instance {inst} port 0.*cannot delete"):
        agent.release_port(inst, ids[0])
    assert [a.port_id for a in agent.allocations(inst)] == ids
    assert len(agent.vf_journals()) == 2


class DyingNetdevs(MemoryNetdevs):
    """Netdevs whose restore is where the process dies, once."""

    die = True

    def restore(self, journal):
        if self.die:
            self.die = False
            raise KeyboardInterrupt
        return super().restore(journal)


def test_a_crash_in_release_port_converges_when_repeated(host):
    inst = new_uuid()
    netdevs = DyingNetdevs(host.netdevs.states)
    agent = host.new_agent(netdev_access=netdevs)
    ids = attached(agent, inst)
    with pytest.raises(KeyboardInterrupt):
        agent.release_port(inst, ids[0])
    agent.close()
    # The restarted agent finds the port still claimed: its network is
    # restored (the ledger says plugged), and the repeated release ends
    # it all.
    again = host.new_agent(netdev_access=netdevs)
    assert host.networks() == [f"{PREFIX}{inst}-0", f"{PREFIX}{inst}-1"]
    freed = again.release_port(inst, ids[0])
    assert freed.port_id == ids[0]
    assert host.networks() == [f"{PREFIX}{inst}-1"]
    assert list(again.vf_journals()) == [again.allocations(inst)[0].address]
    assert [a.port_id for a in again.allocations(inst)] == [ids[1]]


def test_a_crash_inside_the_free_leaves_every_claim(host, monkeypatch):
    inst = new_uuid()
    agent = host.new_agent()
    ids = attached(agent, inst, n=3)
    before = agent.allocations(inst)
    remove_port = LedgerTransaction.remove_port

    def dying_remove_port(self, *args):
        remove_port(self, *args)  # the row deleted, then death
        raise KeyboardInterrupt

    monkeypatch.setattr(LedgerTransaction, "remove_port", dying_remove_port)
    with pytest.raises(KeyboardInterrupt):
        agent.release_port(inst, ids[1])
    monkeypatch.setattr(LedgerTransaction, "remove_port", remove_port)
    agent.close()
    # The transaction was rolled back whole: the ledger holds the three
    # claims as they were (their network of port 1 is restored at start).
    again = host.new_agent()
    assert [(a.port_id, a.port_index, a.address) for a in
            again.allocations(inst)] == [
        (a.port_id, a.port_index, a.address) for a in before]
    assert again.release_port(inst, ids[1]).port_index == 1
    assert [a.port_index for a in again.allocations(inst)] == [0, 2]


def test_freeing_one_port_keeps_the_instances_lease(tmp_path):
    # The tracker's own guarantee (the agent frees no port alone during
    # a migration), through a second tracker on the agent's ledger.
    with Host(tmp_path / "d") as dst:
        agent = dst.new_agent()
        inst = new_uuid()
        a, b = (str(uuid.uuid4()) for _ in range(2))
        agent.prepare_incoming_migration(
            inst, [PortRequest(0, flavor="net1", port_id=a),
                   PortRequest(1, flavor="net1", port_id=b)])
        tracker, _ = HostTracker.from_conf(dst.conf)
        lease = tracker.leases()[inst]
        tracker.free_port(inst, 0)
        assert tracker.leases() == {inst: lease}
        assert [x.port_id for x in agent.allocations(inst)] == [b]
        tracker.free_port(inst, 1)
        assert tracker.leases() == {}
        assert agent.allocations() == []
        tracker.close()
