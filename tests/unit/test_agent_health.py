"""Health: refresh() notices, without a restart, a PF that lost carrier
or its driver, a VF count change and a VF rebind, on a real sysfs tree
(files changed between refreshes) and libvirt's test driver."""

import os
import pathlib
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.config.devspec import parse_device_specs
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.standard_host import INTEL_DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import NET1_FLAVOR
from pci_passthrough.fixtures.standard_host import X710_ADDRESS as PF_A
from pci_passthrough.placement.tree import build_tree

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "10"))
FLAVORS = (NET1_FLAVOR,
           '{"name": "pf1", "physical_network": "physnet1", '
           '"device_type": "type-PF"}')
PF_B = "0000:af:00.0"


def layout(numvfs_a: int = 2) -> st.HostLayout:
    return st.HostLayout((
        st.PfLayout("intel-x710", PF_A, numvfs=numvfs_a, netdev="ens1f0"),
        st.PfLayout("intel-x710", PF_B, numvfs=1, netdev="ens5f0"),
    ))


class Host(AgentHost):
    def __init__(self, workdir: pathlib.Path) -> None:
        super().__init__(workdir, layout(), device_specs=SPECS,
                         flavors=FLAVORS)
        self.agent = self.new_agent()

    def vfs_of(self, pf: str) -> list[str]:
        return sorted(d.address for d in self.tree.devices.values()
                      if d.parent_addr == pf)

    def pf_operstate(self, pf: str, state: str) -> None:
        dev = self.tree.devices[pf]
        (dev.path / "net" / str(dev.netdev) / "operstate").write_text(
            state + "\n")

    def unbind(self, address: str) -> None:
        (self.tree.device_dir(address) / "driver").unlink(missing_ok=True)

    def bind(self, address: str, driver: str) -> None:
        drv = self.tree.root / "bus" / "pci" / "drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        link = self.tree.device_dir(address) / "driver"
        st.relink(link, os.path.relpath(drv, link.parent))


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h



def reasons(agent: HostAgent) -> dict[str, str | None]:
    return {d.address: d.reason for d in agent.explain("net1").devices}


def test_a_pf_that_lost_carrier_gives_no_vf_and_explain_says_why(host):
    host.pf_operstate(PF_A, "lowerlayerdown")
    report = host.agent.refresh()
    assert report.unhealthy == (PF_A,)
    assert report.recovered == ()
    assert host.agent.unhealthy_pfs() == {
        PF_A: "netdev ens1f0 lost carrier (operstate lowerlayerdown)"}
    why = reasons(host.agent)
    for vf in host.vfs_of(PF_A):
        assert why[vf] == (f"unhealthy: its PF {PF_A} netdev ens1f0 lost "
                           f"carrier (operstate lowerlayerdown)")
        assert host.agent.device_states()[vf] == "unhealthy"
    assert why[host.vfs_of(PF_B)[0]] is None
    # The PF itself, assignable as a whole here, is not available either.
    assert host.agent.device_states()[PF_A] == "unhealthy"
    pf_why = {d.address: d.reason
              for d in host.agent.explain("pf1").devices}
    assert pf_why[PF_A] == ("unhealthy: PF 0000:3b:00.0 netdev ens1f0 "
                            "lost carrier (operstate lowerlayerdown)")
    # Only PF_B's one VF is claimable: two ports cannot be served.
    with pytest.raises(exception.ClaimFailed):
        host.agent.claim(new_uuid(), [PortRequest(0, flavor="net1"),
                                      PortRequest(1, flavor="net1")])
    alloc, = host.agent.claim(new_uuid(), [PortRequest(0, flavor="net1")])
    assert alloc.parent_addr == PF_B
    # Carrier back: the same agent gives PF_A's VFs again.
    host.pf_operstate(PF_A, "up")
    report = host.agent.refresh()
    assert (report.unhealthy, report.recovered) == ((), (PF_A,))
    assert host.agent.unhealthy_pfs() == {}
    allocs = host.agent.claim(new_uuid(), [PortRequest(0, flavor="net1"),
                                           PortRequest(1, flavor="net1")])
    assert sorted(a.address for a in allocs) == host.vfs_of(PF_A)


def test_a_pf_whose_driver_was_unbound_is_unhealthy(host):
    host.unbind(PF_A)
    report = host.agent.refresh()
    assert report.unhealthy == (PF_A,)
    why = reasons(host.agent)
    for vf in host.vfs_of(PF_A):
        assert why[vf] == f"unhealthy: its PF {PF_A} has no driver (unbound)"
    host.bind(PF_A, "i40e")
    assert host.agent.refresh().recovered == (PF_A,)
    why = reasons(host.agent)
    assert all(why[vf] is None for vf in host.vfs_of(PF_A))


def test_a_problem_that_changes_is_reported_again(host):
    host.pf_operstate(PF_A, "down")
    assert host.agent.refresh().unhealthy == (PF_A,)
    assert host.agent.refresh().unhealthy == ()  # nothing new
    host.unbind(PF_A)
    assert host.agent.refresh().unhealthy == (PF_A,)
    assert host.agent.unhealthy_pfs()[PF_A] == "has no driver (unbound)"


def test_a_held_vf_of_a_pf_gone_unhealthy_stays_held(host):
    inst = new_uuid()
    alloc, = host.agent.claim(inst, [PortRequest(0, flavor="net1",
                                                 mac="fa:16:3e:00:00:01")])
    host.agent.plug(inst)
    pf = alloc.parent_addr
    assert pf is not None
    host.pf_operstate(pf, "down")
    assert host.agent.refresh().unhealthy == (pf,)
    assert [a.address for a in host.agent.allocations(inst)] == \
        [alloc.address]
    assert host.agent.device_states()[alloc.address] == "plugged"
    assert reasons(host.agent)[alloc.address].startswith("in use by ")
    host.agent.release(inst)
    assert host.agent.device_states()[alloc.address] == "unhealthy"


def test_a_vf_rebind_is_reported(host):
    vf = host.vfs_of(PF_A)[0]
    # Unbinding from iavf removes the netdev; vfio-pci makes none.
    netdev = str(host.tree.devices[vf].netdev)
    shutil.rmtree(host.tree.device_dir(vf) / "net")
    (host.tree.root / "class" / "net" / netdev).unlink()
    host.bind(vf, "vfio-pci")
    report = host.agent.refresh()
    assert report.rebound == (vf,)
    assert report.unhealthy == report.numvfs_changed == ()
    assert host.agent.refresh().rebound == ()
    # On vfio-pci it has no netdev in the scan: a macvtap port cannot
    # use it, and explain says so.
    assert "bound to vfio-pci" in str(reasons(host.agent)[vf])


def test_a_vf_count_change_is_reported(host):
    # The kernel destroys and recreates every VF when sriov_numvfs
    # changes: the tree is written again with another count.
    shutil.rmtree(host.tree.root)
    host.tree = st.build_tree(host.tree.root, layout(numvfs_a=4))
    report = host.agent.refresh()
    assert report.numvfs_changed == (PF_A,)
    assert len(report.added) == 2
    assert report.unhealthy == report.rebound == ()
    why = reasons(host.agent)
    assert [why[vf] for vf in sorted(why) if why[vf] is None] == [None] * 5


def test_placement_reserves_the_vfs_of_an_unhealthy_pf(host):
    host.pf_operstate(PF_A, "notpresent")
    scan = sysfs_scan.scan(host.tree.root)
    tree = build_tree("node1", scan.devices, parse_device_specs(SPECS),
                      frozenset())
    by_pf = {p.pf_address: p for p in tree.providers}
    assert by_pf[PF_A].reserved == by_pf[PF_A].total == 2
    assert by_pf[PF_A].inventory()[by_pf[PF_A].resource_class][
        "reserved"] == 2
    assert by_pf[PF_B].reserved == 0
    # The caller may say which PFs are unhealthy itself.
    tree = build_tree("node1", scan.devices, parse_device_specs(SPECS),
                      frozenset(), unhealthy_pfs=())
    assert all(p.reserved == 0 for p in tree.providers)


OPERSTATES = ("up", "unknown", "dormant", "testing", "down",
              "lowerlayerdown", "notpresent")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(steps=hst.lists(hst.tuples(hst.sampled_from(OPERSTATES),
                                  hst.booleans()), min_size=1, max_size=4))
def test_claimable_vfs_follow_the_pf_health(tmp_path_factory, steps):
    h = Host(tmp_path_factory.mktemp("h"))
    try:
        sick_before = False
        for state, bound in steps:
            h.pf_operstate(PF_A, state)
            if bound:
                h.bind(PF_A, "i40e")
            else:
                h.unbind(PF_A)
            sick = not bound or state in ("down", "lowerlayerdown",
                                          "notpresent")
            report = h.agent.refresh()
            assert (PF_A in h.agent.unhealthy_pfs()) == sick
            assert report.recovered == ((PF_A,) if sick_before and not sick
                                        else ())
            why = reasons(h.agent)
            for vf in h.vfs_of(PF_A):
                assert (why[vf] is None) == (not sick)
                if sick:
                    assert PF_A in str(why[vf])
            sick_before = sick
    finally:
        h.close()
