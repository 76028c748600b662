"""VF hygiene in HostAgent: what is journalled when, what a relocated
sysfs tree (fake netdevs) does, and restores at every end of a claim.
The netdevs of a simulated host exist nowhere: MemoryNetdevs holds their
state (the real netlink path is tested in tests/functional)."""

import dataclasses
import logging

import pytest

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.fixtures.netdevs import MemoryNetdevs
from pci_passthrough.fixtures.standard_host import INTEL_DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import INTEL_FLAVORS as FLAVORS
from pci_passthrough.fixtures.standard_host import X710
from pci_passthrough.fixtures.sysfs_tree import HostLayout
from pci_passthrough.hygiene import NetdevState, VfState
from pci_passthrough.hygiene.access import (
    NetlinkAccess,
    NoNetdevAccess,
    PrivsepNetlinkAccess,
    has_cap_net_admin,
)
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

# Two VFs: one left unrestored makes a two-port claim fail.
LAYOUT = HostLayout((dataclasses.replace(X710, numvfs=2),))
INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
PORT = [PortRequest(0, flavor="net1")]
GUEST = "52:54:00:12:34:56"


@pytest.fixture
def host(make_simulated_host):
    """(a maker of started agents, with the given netdev access or the
    host's in-memory netdevs; those netdevs; the host's configuration)."""
    h = make_simulated_host(LAYOUT, device_specs=SPECS, flavors=FLAVORS,
                            in_memory_netdevs=True)

    def agent(access=None):
        return h.new_agent(netdev_access=access)

    return agent, h.netdevs, h.conf


def guest_took(netdevs, netdev):
    netdevs.states[netdev] = NetdevState(netdev=netdev, mac=GUEST,
                                         mtu=9000, up=False)


def test_the_first_plug_journals_a_replug_keeps_the_first(host):
    new_agent, netdevs, _ = host
    agent = new_agent()
    agent.claim(INST, PORT)
    (port,) = agent.plug(INST)
    before = netdevs.states[port.netdev]
    assert agent.vf_journals() == {port.address: before}
    guest_took(netdevs, port.netdev)
    agent.plug(INST)  # idempotent: the guest's state is not journalled
    assert agent.vf_journals() == {port.address: before}
    agent.release(INST)
    assert netdevs.states[port.netdev] == before
    assert agent.vf_journals() == {}


@pytest.mark.parametrize("end", ["complete_outgoing_migration",
                                 "abort_incoming_migration"])
def test_migration_ends_restore(host, end):
    new_agent, netdevs, _ = host
    agent = new_agent()
    if end == "abort_incoming_migration":
        (port,) = agent.prepare_incoming_migration(INST, PORT)
    else:
        agent.claim(INST, PORT)
        (port,) = agent.plug(INST)
        agent.begin_outgoing_migration(INST)
    before = netdevs.states[port.netdev]
    guest_took(netdevs, port.netdev)
    getattr(agent, end)(INST)
    assert netdevs.states[port.netdev] == before


def test_an_unrestored_vf_is_never_handed_out(host):
    new_agent, netdevs, _ = host
    agent = new_agent()
    agent.claim(INST, PORT)
    (port,) = agent.plug(INST)
    guest_took(netdevs, port.netdev)
    state = netdevs.states.pop(port.netdev)  # unreachable at release
    agent.release(INST)
    netdevs.states[port.netdev] = state
    # Two VFs, one unrestored: a two-port claim fails, naming why.
    with pytest.raises(exception.ClaimFailed):
        agent.claim(INST, [PortRequest(0, "net1"), PortRequest(1, "net1")])
    (alloc,) = agent.claim(INST, PORT)
    assert alloc.address != port.address
    # Another agent on the same ledger agrees (the journal is shared).
    other = new_agent()
    verdicts = {d.address: d.reason for d in other.explain("net1").devices}
    assert "not restored yet" in verdicts[port.address]


def test_a_relocated_sysfs_root_touches_no_netdev(host, caplog):
    _, _, conf = host
    agent = HostAgent(conf, network_driver=LibvirtMacvtapDriver(conf))
    try:
        assert isinstance(agent.netdev_access, NoNetdevAccess)
        agent.start()
        with caplog.at_level(logging.WARNING):
            agent.claim(INST, PORT)
            agent.plug(INST)
        assert not [r for r in caplog.records
                    if r.name.startswith("pci_passthrough")]
        assert agent.vf_journals() == {}
        agent.release(INST)
    finally:
        agent.close()


@pytest.mark.parametrize(("writes", "cls"), [
    ("auto", NetlinkAccess if has_cap_net_admin() else PrivsepNetlinkAccess),
    ("direct", NetlinkAccess),
    ("privsep", PrivsepNetlinkAccess),
])
def test_the_real_sysfs_root_uses_netlink(host, writes, cls):
    _, _, conf = host
    conf.set_override("sysfs_root", "/sys", group="pci_passthrough")
    conf.set_override("netdev_writes", writes, group="pci_passthrough")
    agent = HostAgent(conf, network_driver=LibvirtMacvtapDriver(conf))
    try:
        assert type(agent.netdev_access) is cls
    finally:
        agent.close()


def test_a_missing_netdev_is_plugged_without_journal(host, caplog):
    new_agent, netdevs, _ = host
    netdevs.states.clear()
    agent = new_agent()
    agent.claim(INST, PORT)
    with caplog.at_level(logging.WARNING):
        assert agent.plug(INST)
    assert any("does not exist here; its state is not journalled"
               in r.getMessage() for r in caplog.records)
    assert agent.vf_journals() == {}


def test_a_netdev_read_error_does_not_fail_the_plug(host, caplog):
    new_agent, _, _ = host

    class Unreadable(MemoryNetdevs):
        # A permission error cannot be produced for real here.
        def read(self, netdev, vf=None):
            raise exception.NetdevPermissionDenied(
                netdev=netdev, step="read the link", where="",
                reason="EPERM")

    agent = new_agent(Unreadable())
    agent.claim(INST, PORT)
    with caplog.at_level(logging.WARNING):
        assert agent.plug(INST)
    assert any("it is not journalled" in r.getMessage()
               for r in caplog.records)


def test_the_vf_settings_on_the_pf_are_journalled_and_compared(host):
    new_agent, netdevs, _ = host
    agent = new_agent()
    devices = agent.devices()
    for state in list(netdevs.states.values()):
        dev = next(d for d in devices.values() if d.netdev == state.netdev)
        netdevs.states[state.netdev] = NetdevState(
            netdev=state.netdev, mac=state.mac, mtu=1500, up=True,
            vf=VfState(pf=dev.pf_netdev, index=dev.vf_index,
                       mac="00:00:00:00:00:00", vlan=0, qos=0,
                       vlan_proto=0x8100, spoof_check=True, trust=False))
    agent.claim(INST, PORT)
    (port,) = agent.plug(INST)
    journal = agent.vf_journals()[port.address]
    assert journal.vf is not None and journal.vf.spoof_check is True
    # The guest's MAC ends up as the VF's admin MAC on the PF; the
    # restore at release cannot reach the netdev.
    state = netdevs.states.pop(port.netdev)
    agent.release(INST)
    netdevs.states[port.netdev] = NetdevState(
        netdev=state.netdev, mac=state.mac, mtu=1500, up=True,
        vf=VfState(pf=state.vf.pf, index=state.vf.index, mac=GUEST,
                   vlan=0, qos=0, vlan_proto=0x8100, spoof_check=True,
                   trust=False))
    (finding,) = agent.doctor().findings
    assert f"vf.mac: '{GUEST}'" in finding.problem
    # Only the admin MAC differs: the VF settings were read through
    # the PF, not reported missing.
    assert f"(vf.mac: '{GUEST}' (journal: '00:00:00:00:00:00'))" in \
        finding.problem
    assert agent.doctor(fix=True).findings[0].fixed
    assert netdevs.states[port.netdev] == journal
