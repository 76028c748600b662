"""VF hygiene on a real libvirtd: a guest in passthrough mode takes the
VF netdev's MAC; libvirtd and the guest are killed (a crash: libvirt's
own copy of the old MAC, on tmpfs, is lost with them); the library
restores the MAC from its ledger's journal when the instance is
released, and doctor finds and repairs what release could not.  The
VFs are veth netdevs in the host's network namespace."""

import json
import os
import shutil
import signal
import time
import uuid

import pytest

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.hygiene.access import NetlinkAccess

pytestmark = pytest.mark.functional

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)
GUEST_MAC = "52:54:00:00:30:01"


def link(host, name):
    (data,) = json.loads(host.ip("-j", "link", "show", "dev", name))
    return data


def kill_daemon_and_guests(host):
    """SIGKILL libvirtd and every QEMU: nothing gets to clean up."""
    for pid in host.qemu_pids().values():
        os.kill(pid, signal.SIGKILL)
    pid = int((host.workdir / "libvirtd.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(os.path.exists(f"/proc/{p}") for p in
              [pid, *host.qemu_pids().values()]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # A reboot empties /run: libvirt's saved copy of the MAC goes too.
    shutil.rmtree(host.workdir / "run", ignore_errors=True)
    (host.workdir / "run").mkdir()


def test_the_vf_mac_is_restored_after_libvirtd_is_killed(host_a, tmp_path):
    st.build_tree(tmp_path / "sys", st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0",
        vf_netdevs=("vfa0", "vfa1")),)))
    conf = host_conf(tmp_path, device_specs=SPECS, flavors=FLAVORS,
                     libvirt_uri=host_a.uri)
    host_a.ip("link", "set", "vfa0", "mtu", "1400")
    before = link(host_a, "vfa0")
    access = NetlinkAccess(netns=host_a.netns)
    agent = HostAgent(conf, netdev_access=access)
    try:
        agent.start()
        inst = str(uuid.uuid4())
        (alloc,) = agent.claim(inst, [PortRequest(0, flavor="net1",
                                                  mac=GUEST_MAC)])
        assert alloc.netdev == "vfa0"
        (port,) = agent.plug(inst)
        conn = host_a.connect()
        conn.createXML(guest_xml("guest-hygiene", [port.interface_xml]),
                       0)
        conn.close()
        # Passthrough mode hands the guest's MAC to the VF netdev.
        assert link(host_a, "vfa0")["address"] == GUEST_MAC
        # Simulate what a guest may do besides: another MTU.
        host_a.ip("link", "set", "vfa0", "mtu", "9000")
        kill_daemon_and_guests(host_a)
        host_a.start_daemons(virtlogd=False)
        assert link(host_a, "vfa0")["address"] == GUEST_MAC
        agent.release(inst)
        after = link(host_a, "vfa0")
        assert after["address"] == before["address"] != GUEST_MAC
        assert after["mtu"] == 1400
        assert agent.doctor().findings == ()
    finally:
        agent.close()


def test_doctor_restores_a_vf_that_release_could_not(host_a, tmp_path):
    st.build_tree(tmp_path / "sys", st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0",
        vf_netdevs=("vfa0", "vfa1")),)))
    conf = host_conf(tmp_path, device_specs=SPECS, flavors=FLAVORS,
                     libvirt_uri=host_a.uri)
    before = {n: link(host_a, n) for n in ("vfa0", "vfa1")}
    agent = HostAgent(conf, netdev_access=NetlinkAccess(netns=host_a.netns))
    try:
        agent.start()
        inst = str(uuid.uuid4())
        agent.claim(inst, [PortRequest(0, flavor="net1")])
        (port,) = agent.plug(inst)
        host_a.ip("link", "set", port.netdev, "address", GUEST_MAC)
        # Released by an agent that cannot reach the netdevs: the claim
        # goes, the journal stays and the VF is not handed out.
        blind = HostAgent(conf, netdev_access=NetlinkAccess(
            netns="/nonexistent/netns"))
        try:
            blind.release(inst)
        finally:
            blind.close()
        verdicts = {d.address: d for d in agent.explain("net1").devices}
        assert "not restored yet" in verdicts[port.address].reason
        report = agent.doctor()
        assert [f.kind for f in report.findings] == [
            FindingKind.VF_NOT_RESTORED]
        assert GUEST_MAC in report.findings[0].problem
        report = agent.doctor(fix=True)
        assert report.findings[0].fixed and not report.left
        assert link(host_a, port.netdev)["address"] == \
            before[port.netdev]["address"]
    finally:
        agent.close()
