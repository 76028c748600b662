"""HostAgent under faults and misuse: plug rollback whatever fails,
plugin exceptions wrapped, repeated claims that differ, VLANs the forward
mode cannot carry, reconcile leaving other networks alone, a closed agent,
and per-instance locks that do not pile up.

Faults are produced by the real LibvirtMacvtapDriver on a connection to
libvirt's test driver that fails at a chosen step, not by mocks."""

import logging
import re
import threading

import pytest
from lxml import etree

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.agent import OperationGate
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.standard_host import DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import FLAVORS, LAYOUT
from pci_passthrough.model.states import PortState, Repair
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.network.noop import NoopDriver

PORTS = [PortRequest(0, flavor="net1", mac="52:54:00:00:00:01"),
         PortRequest(1, flavor="grp1", mac="52:54:00:00:00:02")]


class Boom(Exception):
    """What a third-party plugin might raise: not a library error."""


class FailingConnection:
    """A real libvirt connection, failing at one step for one network.

    :param step: "define" (after the network is defined), "create"
        (after it is started) or "autostart" (after autostart is set).
    """

    def __init__(self, conn, network=None, step="create", error=None):
        self._conn = conn
        self.fail_network = network
        self.fail_step = step
        self.error = error or Boom("plugin failed")

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def fail(self, step, name):
        if step == self.fail_step and name == self.fail_network:
            raise self.error

    def networkDefineXMLFlags(self, xml, flags):
        net = FailingNetwork(self._conn.networkDefineXMLFlags(xml, flags),
                             self)
        self.fail("define", net.name())
        return net


class FailingNetwork:
    """A network defined through a FailingConnection."""

    def __init__(self, net, conn):
        self._net = net
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._net, name)

    def create(self):
        self._net.create()
        self._conn.fail("create", self._net.name())

    def setAutostart(self, autostart):
        self._net.setAutostart(autostart)
        self._conn.fail("autostart", self._net.name())


def failing_driver(conf, conn, **kwargs):
    """The real driver on ``conn`` failing as FailingConnection says."""
    return LibvirtMacvtapDriver(conf, FailingConnection(conn, **kwargs))


class Host(AgentHost):
    def __init__(self, workdir, mode="passthrough", prefix="pcipt-"):
        super().__init__(workdir, LAYOUT, device_specs=SPECS,
                         flavors=FLAVORS, macvtap_mode=mode,
                         network_name_prefix=prefix)
        self.prefix = prefix

    def failing(self, **kwargs):
        return self.new_agent(failing_driver(self.conf, self.conn,
                                             **kwargs))

    def networks(self):
        return sorted(n.name() for n in self.conn.listAllNetworks(0)
                      if n.name().startswith(self.prefix))


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h



# -- plug rollback -----------------------------------------------------------

@pytest.mark.parametrize("step", ["define", "create", "autostart"])
@pytest.mark.parametrize("port", [0, 1])
@pytest.mark.parametrize("error", [
    Boom("plugin failed"), KeyError("netdev"),
    exception.NetworkOperationFailed(network="x", operation="start",
                                     reason="no", code=1)],
    ids=["raw", "raw-keyerror", "library"])
def test_plug_rollback_removes_every_network_it_touched(host, step, port,
                                                        error, caplog):
    inst = new_uuid()
    failed = f"pcipt-{inst}-{port}"
    agent = host.failing(network=failed, step=step, error=error)
    agent.claim(inst, PORTS)
    with caplog.at_level(logging.DEBUG, logger="pci_passthrough"), \
            pytest.raises(exception.NetworkDriverError) as err:
        agent.plug(inst)
    # Nothing of the instance is left in libvirt, the failed port's
    # network included; the claims stay for the caller to release.
    assert host.networks() == []
    assert {a.state for a in agent.allocations(inst)} == {PortState.CLAIMED}
    message = str(err.value)
    assert f"Network {failed} for instance {inst} port {port}" in message
    assert err.value.__cause__ is error
    if not isinstance(error, exception.PciPassthroughError):
        assert f"{type(error).__name__}" in message
        logged = [r for r in caplog.records
                  if r.levelno == logging.ERROR and r.exc_info
                  and r.exc_info[1] is error]
        assert logged and inst in logged[0].getMessage()
    # The caller's release then leaves the host clean.
    agent.release(inst)
    assert agent.allocations() == []


def test_rollback_on_a_non_exception_interrupt(host):
    inst = new_uuid()
    agent = host.failing(network=f"pcipt-{inst}-1", step="create",
                         error=KeyboardInterrupt())
    agent.claim(inst, PORTS)
    with pytest.raises(KeyboardInterrupt):
        agent.plug(inst)
    assert host.networks() == []


def test_rollback_leaves_the_networks_of_ports_already_plugged(host):
    inst = new_uuid()
    agent = host.failing(network=f"pcipt-{inst}-1", step="create")
    agent.claim(inst, PORTS[:1])
    agent.plug(inst)
    # A port added later fails: the running port's network stays.
    agent.claim(inst, PORTS)
    with pytest.raises(exception.NetworkDriverError):
        agent.plug(inst)
    assert host.networks() == [f"pcipt-{inst}-0"]


def test_a_network_left_by_a_crash_before_plug_is_removed_on_failure(host):
    inst = new_uuid()
    agent = host.failing(network=f"pcipt-{inst}-1", step="create")
    agent.claim(inst, PORTS)
    # A crash left port 0's network defined, never recorded as plugged.
    host.conn.networkDefineXML(
        f"<network><name>pcipt-{inst}-0</name><forward mode='passthrough'>"
        f"<interface dev='ens1f0v0'/></forward></network>")
    with pytest.raises(exception.NetworkDriverError):
        agent.plug(inst)
    assert host.networks() == []


def test_prepare_incoming_migration_undoes_everything_on_a_raw_error(host):
    inst = new_uuid()
    agent = host.failing(network=f"pcipt-{inst}-1", step="autostart")
    with pytest.raises(exception.NetworkDriverError, match="Boom"):
        agent.prepare_incoming_migration(inst, PORTS)
    assert host.networks() == [] and agent.allocations() == []


def test_release_wraps_a_raw_error_and_frees_nothing(host):
    class BrokenDelete(LibvirtMacvtapDriver):
        def delete_network(self, name):
            raise Boom("cannot delete")

    inst = new_uuid()
    agent = host.new_agent(BrokenDelete(host.conf, connection=host.conn))
    agent.claim(inst, PORTS)
    agent.plug(inst)
    with pytest.raises(exception.NetworkDriverError,
                       match=f"instance {inst} port 0.*Boom: cannot "
                             f"delete"):
        agent.release(inst)
    assert len(agent.allocations(inst)) == 2


# -- repeated claims ---------------------------------------------------------

@pytest.mark.parametrize("changed,field,held,wanted", [
    (PortRequest(0, flavor="grp1", mac="52:54:00:00:00:01"), "flavor",
     "'net1'", "'grp1'"),
    (PortRequest(0, flavor="net1", mac="52:54:00:00:00:09"), "mac",
     "'52:54:00:00:00:01'", "'52:54:00:00:00:09'"),
    (PortRequest(0, flavor="net1", mac="52:54:00:00:00:01", vlan=100),
     "vlan", "none", "100"),
    (PortRequest(0, flavor="net1"), "mac", "'52:54:00:00:00:01'", "none"),
    (PortRequest(0, spec={"physical_network": "physnet1"},
                 mac="52:54:00:00:00:01"), "flavor", "'net1'", "none"),
])
def test_a_repeated_claim_that_differs_is_an_error(host, changed, field,
                                                   held, wanted):
    inst = new_uuid()
    agent = host.new_agent()
    first = agent.claim(inst, PORTS)
    with pytest.raises(exception.ClaimConflict) as err:
        agent.claim(inst, [changed, PORTS[1]])
    assert str(err.value) == (
        f"Instance {inst} port 0 already holds device {first[0].address} "
        f"with {field} {held}; the request asks for {wanted}. Release the "
        f"instance to claim it anew.")
    assert agent.allocations(inst) == first
    # The same request again is no error: the ports as they are.
    assert agent.claim(inst, PORTS) == first


# -- VLANs -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bridge", "private", "vepa"])
def test_a_vlan_the_forward_mode_cannot_carry_is_refused_at_claim(
        tmp_path, mode):
    h = Host(tmp_path / "h", mode=mode)
    try:
        agent = h.new_agent()
        inst = new_uuid()
        port = [PortRequest(0, flavor="net1"),
                PortRequest(1, flavor="grp1", vlan=42)]
        with pytest.raises(exception.InvalidPortRequest) as err:
            agent.claim(inst, port)
        assert str(err.value) == (
            f"Invalid request for port 1: VLAN 42 cannot be carried: "
            f"option [pci_passthrough] macvtap_mode is {mode}, and libvirt "
            f"applies a VLAN to a macvtap interface only in mode "
            f"passthrough.")
        assert agent.allocations() == []
        with pytest.raises(exception.MigrationRefused, match="VLAN 42"):
            agent.prepare_incoming_migration(inst, port)
        assert agent.allocations() == [] and h.networks() == []
        # Without a VLAN the mode serves.
        agent.claim(inst, port[:1])
        agent.plug(inst)
        assert h.networks() == [f"pcipt-{inst}-0"]
    finally:
        h.close()


def test_a_vlan_in_passthrough_mode_reaches_the_network(host):
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, [PortRequest(0, flavor="net1", vlan=42)])
    agent.plug(inst)
    xml = etree.fromstring(host.conn.networkLookupByName(
        f"pcipt-{inst}-0").XMLDesc(0))
    assert xml.find("vlan/tag").get("id") == "42"


# -- reconcile ---------------------------------------------------------------

def test_reconcile_touches_only_names_that_parse_whole(tmp_path):
    h = Host(tmp_path / "h", prefix="d")
    try:
        stray = f"d{new_uuid()}-0"
        kept = ["default", "d-other", f"d{new_uuid()}-0-copy",
                f"d{new_uuid().upper()}-0", f"d{new_uuid()}-01"]
        for name in [*kept, stray]:
            h.conn.networkDefineXML(
                f"<network><name>{name}</name><forward mode='bridge'>"
                f"<interface dev='eth0'/></forward></network>").create()
        report = h.new_agent(start=False).start()
        assert [(a.action, a.network) for a in report.actions] == [
            (Repair.DELETED, stray)]
        assert sorted(n.name() for n in h.conn.listAllNetworks(0)) == \
            sorted(kept)
    finally:
        h.close()


# -- a closed agent ----------------------------------------------------------

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
PORT_ID = "9e1c07a4-55b1-4e0b-8d0e-2f6a3c1d7b10"
CALLS = {
    "start": lambda a: a.start(),
    "refresh": lambda a: a.refresh(),
    "claim": lambda a: a.claim(INST, PORTS),
    "plug": lambda a: a.plug(INST),
    "prepare_incoming_migration":
        lambda a: a.prepare_incoming_migration(INST, PORTS),
    "complete_outgoing_migration":
        lambda a: a.complete_outgoing_migration(INST),
    "abort_incoming_migration": lambda a: a.abort_incoming_migration(INST),
    "complete_incoming_migration":
        lambda a: a.complete_incoming_migration(INST),
    "begin_outgoing_migration":
        lambda a: a.begin_outgoing_migration(INST),
    "abort_outgoing_migration":
        lambda a: a.abort_outgoing_migration(INST),
    "expire_leases": lambda a: a.expire_leases(),
    "doctor": lambda a: a.doctor(),
    "release": lambda a: a.release(INST),
    "allocations": lambda a: a.allocations(),
    "device_states": lambda a: a.device_states(),
    "devices": lambda a: a.devices(),
    "explain": lambda a: a.explain("net1"),
    "network_name": lambda a: a.network_name(INST, 0),
    "unhealthy_pfs": lambda a: a.unhealthy_pfs(),
    "vf_journals": lambda a: a.vf_journals(),
    "__enter__": lambda a: a.__enter__(),
    # Placement
    "update_provider_tree": lambda a: a.update_provider_tree(None, "n"),
    "use_placement_providers": lambda a: a.use_placement_providers("n", {}),
    "provider_tree": lambda a: a.provider_tree("n"),
    "request_groups": lambda a: a.request_groups("net1"),
    # One port, by its Neutron UUID
    "claim_port": lambda a: a.claim_port(INST, PortRequest(
        0, flavor="net1", port_id=PORT_ID)),
    "plug_port": lambda a: a.plug_port(INST, PORT_ID),
    "release_port": lambda a: a.release_port(INST, PORT_ID),
    "bind_port": lambda a: a.bind_port(INST, PORT_ID, mac=None, vlan=None),
    "binding_profile": lambda a: a.binding_profile(INST, PORT_ID),
    "port_slots": lambda a: a.port_slots(INST),
    "placement_resources": lambda a: a.placement_resources(INST),
}


def test_every_public_method_is_in_the_closed_agent_test():
    public = {n for n in dir(HostAgent)
              if not n.startswith("_") and callable(getattr(HostAgent, n))}
    # close() itself may be called again: it does nothing then.
    assert public - {"close"} == set(CALLS) - {"__enter__"}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_every_method_of_a_closed_agent_raises(host, method):
    agent = host.new_agent()
    agent.claim(INST, PORTS)
    agent.close()
    with pytest.raises(exception.AgentClosed,
                       match=rf"HostAgent\.{method}: the agent is closed"):
        CALLS[method](agent)
    agent.close()  # idempotent


def test_close_waits_for_an_operation_in_progress(host):
    entered, go = threading.Event(), threading.Event()

    class SlowDriver(NoopDriver):
        def ensure_network(self, spec):
            entered.set()
            go.wait(10)
            return super().ensure_network(spec)

    agent = host.new_agent(SlowDriver())
    agent.claim(INST, PORTS)
    plugging = threading.Thread(target=agent.plug, args=(INST,))
    plugging.start()
    entered.wait(10)
    closer = threading.Thread(target=agent.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the plug
    go.set()
    plugging.join(10)
    closer.join(10)
    assert not closer.is_alive()
    with pytest.raises(exception.AgentClosed):
        agent.allocations()


# -- memory ------------------------------------------------------------------

def test_instance_locks_are_pruned_when_no_operation_holds_them(host):
    gate = OperationGate()
    agent = HostAgent(host.conf, network_driver=NoopDriver(), gate=gate)
    host.agents.append(agent)
    agent.start()
    instances = [new_uuid() for _ in range(8)]
    errors = []

    def work(inst):
        # Eight instances share three net1 VFs: a claim may find none.
        for _ in range(5):
            try:
                agent.claim(inst, PORTS[:1])
                agent.plug(inst)
            except exception.ClaimFailed:
                pass
            except Exception as exc:  # reported below
                errors.append(exc)
            agent.release(inst)

    threads = [threading.Thread(target=work, args=(i,))
               for i in instances + instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert agent.allocations() == []
    assert gate.busy_instances() == frozenset()


# -- another process frees the instance mid-plug --------------------------

def test_a_free_by_another_process_during_plug_leaves_no_network(host):
    inst = new_uuid()
    # The other process: its own agent and ledger connection on the same
    # host (the CLI's free).
    other = host.new_agent()

    class FreedMidway(LibvirtMacvtapDriver):
        def ensure_network(self, spec):
            changed = super().ensure_network(spec)
            if spec.name.endswith("-0"):
                other.release(inst)
            return changed

    agent = host.new_agent(FreedMidway(host.conf, connection=host.conn))
    agent.claim(inst, PORTS)
    with pytest.raises(exception.InvalidStateTransition,
                       match=f"Instance {inst} port - cannot go from state "
                             f"none to plugged"):
        agent.plug(inst)
    assert host.networks() == []
    assert agent.allocations() == [] and other.allocations() == []
    # Plugging an instance that holds nothing plugs nothing.
    assert agent.plug(inst) == []


def test_closing_the_agent_leaves_the_host_process_connection_open(host):
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, PORTS[:1])
    agent.plug(inst)
    agent.close()
    assert host.conn.isAlive() == 1
    assert host.networks() == [f"pcipt-{inst}-0"]


def test_reconcile_restores_the_network_of_a_port_leased_to_a_migration(
        host):
    agent = host.new_agent()
    inst = new_uuid()
    agent.claim(inst, PORTS[:1])
    agent.plug(inst)
    # The source side of a migration in progress.
    agent.begin_outgoing_migration(inst)
    agent.close()
    name = f"pcipt-{inst}-0"
    net = host.conn.networkLookupByName(name)
    net.destroy()
    net.undefine()
    report = host.new_agent(start=False).start()
    assert [(a.action, a.network) for a in report.actions] == [
        (Repair.RESTORED, name)]
    assert host.networks() == [name]


@pytest.mark.parametrize("ports,cells,shown", [
    ([{"index": 0, "flavor": "net1"}], None, "sequence of PortRequest"),
    ("net1", None, "sequence of PortRequest"),
    (PORTS[0], None, "sequence of PortRequest"),
    (PORTS, "0", "numa_cells '0' is not"),
    (PORTS, [0, -1], "numa_cells [0, -1] is not"),
    (PORTS, [True], "numa_cells [True] is not"),
])
def test_malformed_claim_arguments_are_refused_by_name(host, ports, cells,
                                                       shown):
    agent = host.new_agent()
    with pytest.raises(exception.InvalidPortRequest, match=re.escape(shown)):
        agent.claim(INST, ports, cells)
    with pytest.raises(exception.MigrationRefused, match=re.escape(shown)):
        agent.prepare_incoming_migration(INST, ports, cells)
    assert agent.allocations() == []
