"""VF hygiene in a process without CAP_NET_ADMIN, as nova-compute runs:
a direct restore is refused by the kernel, the restore through the
library's oslo.privsep daemon succeeds, and a HostAgent whose release
could not restore a VF gets it back into service through privsep.
Real veth netdevs in a private network namespace, a real privsep daemon
(started by fork before the process drops its capabilities, or exec'd
through privsep-helper after, as sudo would run it).

Needs root; skips with the reason otherwise, fails instead with
PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1 (CI sets it).  The unprivileged
process is a child: capabilities dropped there stay dropped, and the
test process keeps its own.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]
from veth_netns import require_root, veth_namespace

from pci_passthrough.hygiene import NetdevState, to_json

pytestmark = pytest.mark.functional

VF = "vfa0"
PEER = "vfa0p"
GUEST_MAC = "02:ca:fe:00:00:01"
GUEST_MTU = 9000
JOURNAL_MTU = 1400
HELPER = pathlib.Path(sys.executable).parent / "privsep-helper"
TIMEOUT = 120

# Every child starts so: enter the namespace (as root), start the daemon
# by fork if asked (while privileged) or name the helper to exec; it
# calls drop_capabilities() when it is to become nova-compute: every
# capability leaves the effective, permitted and inheritable sets, the
# bounding set stays (so an exec'd root helper regains them, as under
# sudo).
PRELUDE = textwrap.dedent("""
    import json, sys
    from oslo_config import cfg
    from oslo_privsep import capabilities, priv_context
    from pyroute2 import netns
    from pci_passthrough import privsep
    from pci_passthrough.hygiene import privileged
    from pci_passthrough.config import opts
    name, method, helper, *args = sys.argv[1:]
    netns.setns(name)
    cfg.CONF([], project="pcipt-privsep-test", default_config_files=[],
             default_config_dirs=[])
    if method == "fork":
        privsep.context.start(priv_context.Method.FORK)
    else:
        cfg.CONF.set_override("helper_command", helper,
                              group=opts.PRIVILEGED_GROUP)

    def drop_capabilities():
        capabilities.drop_all_caps_except([], [], [])
""")

# Restores one journalled state, directly and through privsep.
ACCESS_CHILD = PRELUDE + textwrap.dedent("""
    from pci_passthrough import exception
    from pci_passthrough.hygiene.access import (
        NetlinkAccess, has_cap_net_admin, netlink_access)
    from pci_passthrough.hygiene import from_json, to_doc, to_json

    drop_capabilities()
    out = {"caps": capabilities.get_caps(),
           "net_admin": has_cap_net_admin()}
    journal = from_json(args[0], "test journal")
    try:
        NetlinkAccess().restore(journal)
        out["direct"] = "restored"
    except exception.NetdevPermissionDenied as exc:
        out["direct"] = str(exc)
    access = netlink_access("auto")
    out["access"] = type(access).__name__
    out["steps"] = [s.kind.name for s in access.restore(journal)]
    out["again"] = [s.kind.name for s in access.restore(journal)]
    out["read"] = to_json(access.read(journal.netdev))
    try:
        privileged.restore_netdev_state(to_doc(journal) | {"netdev": "../x"})
        out["hostile"] = "accepted"
    except exception.InvalidNetdevName as exc:
        out["hostile"] = str(exc)
    privsep.context.stop()
    print(json.dumps(out))
""")

# A HostAgent's whole VF hygiene: a port plugged while privileged (the
# state journalled), a guest's MAC, then, without capabilities, a
# release whose direct restore fails (the VF is not handed out) and a
# doctor --fix through privsep after which the VF is claimable again.
AGENT_CHILD = PRELUDE + textwrap.dedent("""
    import pathlib, uuid
    from pyroute2 import IPRoute
    from pci_passthrough import HostAgent, PortRequest
    from pci_passthrough.fixtures import sysfs_tree as st
    from pci_passthrough.fixtures.simulated_host import host_conf
    from pci_passthrough.hygiene.access import netlink_access

    work, guest_mac = pathlib.Path(args[0]), args[1]
    st.build_tree(work / "sys", st.HostLayout((st.PfLayout(
        "intel-x710", "0000:3b:00.0", numvfs=1, netdev="ens1f0",
        vf_netdevs=("vfa0",)),)))
    conf = host_conf(
        work, network_driver="noop",
        device_specs=['{"vendor_id": "8086", "physical_network": "p1"}'],
        flavors=['{"name": "net1", "physical_network": "p1"}'])

    def agent(writes):
        # The tree is not /sys: the access is given as HostAgent would
        # pick it on the real one.
        made = HostAgent(conf, netdev_access=netlink_access(writes))
        made.start()
        return made

    out = {}
    inst = str(uuid.uuid4())
    first = agent("auto")
    out["privileged_access"] = type(first.netdev_access).__name__
    first.claim(inst, [PortRequest(0, flavor="net1")])
    (port,) = first.plug(inst)
    first.close()
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname="vfa0")
        ipr.link("set", index=index, address=guest_mac)
    drop_capabilities()
    direct = agent("direct")
    direct.release(inst)
    out["after_direct"] = {d.address: d.reason
                           for d in direct.explain("net1").devices
                           }[port.address]
    direct.close()
    nova = agent("auto")
    out["access"] = type(nova.netdev_access).__name__
    report = nova.doctor(fix=True)
    out["findings"] = [(f.kind.value, f.fixed) for f in report.findings]
    out["left"] = len(report.left)
    (again,) = nova.claim(str(uuid.uuid4()), [PortRequest(0, flavor="net1")])
    out["claimed_again"] = again.netdev
    nova.close()
    privsep.context.stop()
    print(json.dumps(out))
""")


# A daemon that stops answering (SIGSTOP, a real hang): the restore
# gives up after the context's timeout with the library's error, and
# the daemon answers again once continued.
HUNG_CHILD = PRELUDE + textwrap.dedent("""
    import os, pathlib, signal
    from pci_passthrough import exception
    from pci_passthrough.hygiene.access import netlink_access
    from pci_passthrough.hygiene import from_json

    def daemons():
        me = str(os.getpid())
        for entry in pathlib.Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if stat.rsplit(")", 1)[1].split()[1] == me:
                    yield int(entry.name)

    drop_capabilities()
    journal = from_json(args[0], "test journal")
    access = netlink_access("privsep")
    out = {"first": [s.kind.name for s in access.restore(journal)]}
    (daemon,) = daemons()  # forked: the one child of this process
    privsep.context.timeout = 1.0  # RESTORE_TIMEOUT, shortened
    os.kill(daemon, signal.SIGSTOP)
    try:
        access.restore(journal)
        out["hung"] = "answered"
    except exception.NetdevStateError as exc:
        out["hung"] = str(exc)
    os.kill(daemon, signal.SIGCONT)
    privsep.context.stop()
    print(json.dumps(out))
""")


@pytest.fixture
def netns() -> Iterator[str]:
    """A private namespace holding the veth pair vfa0 / vfa0p."""
    require_root("privsep tests")
    with veth_namespace("pciptpsp", VF, PEER) as name:
        yield name


def _link(netns: str) -> tuple[str, int]:
    with IPRoute(netns=netns, flags=0) as ipr:
        (msg,) = ipr.link("get", ifname=VF)
        return msg.get_attr("IFLA_ADDRESS"), msg.get_attr("IFLA_MTU")


def _group_members(pgid: int) -> list[int]:
    """Processes still in process group ``pgid`` (the child's, which the
    privsep daemons join)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        # A zombie has exited; whoever adopted it reaps it.
        if int(group) == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def _run_child(script: str, netns: str, method: str, *args: str) -> dict:
    assert HELPER.exists(), f"{HELPER}: oslo.privsep is not installed"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, netns, method, str(HELPER), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    left: list[int] = []
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
        # The daemons exit when the child's socket closes.
        deadline = time.monotonic() + 10
        while (left := _group_members(proc.pid)) and (
                time.monotonic() < deadline):
            time.sleep(0.05)
    finally:
        # A hung child and its daemons go all together.
        if proc.poll() is None or _group_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert left == [], "a privsep daemon outlived its client"
    result: dict = json.loads(out.splitlines()[-1])
    return result


@pytest.mark.parametrize("method", ["fork", "rootwrap"])
def test_an_unprivileged_process_restores_through_privsep(netns, method):
    mac, _ = _link(netns)
    journal = NetdevState(netdev=VF, mac=mac, mtu=JOURNAL_MTU, up=False)
    # What a guest leaves behind.
    with IPRoute(netns=netns, flags=0) as ipr:
        (index,) = ipr.link_lookup(ifname=VF)
        ipr.link("set", index=index, address=GUEST_MAC, mtu=GUEST_MTU)
    assert _link(netns) == (GUEST_MAC, GUEST_MTU)

    result = _run_child(ACCESS_CHILD, netns, method, to_json(journal))

    assert result["caps"] == [[], [], []]
    assert result["net_admin"] is False
    # The kernel refuses the write to this process...
    assert "permission denied" in result["direct"], result["direct"]
    assert f"netdev {VF}" in result["direct"]
    # ... auto picks privsep, whose daemon writes it.
    assert result["access"] == "PrivsepNetlinkAccess"
    assert result["steps"] == ["MAC", "MTU"]
    assert result["again"] == []
    assert json.loads(result["read"])["mac"] == mac
    # The daemon itself refuses a malformed request.
    assert "'../x'" in result["hostile"]
    assert "privileged restore request" in result["hostile"]
    # Read back from a fresh socket of this (privileged) process.
    assert _link(netns) == (mac, JOURNAL_MTU)
    assert mac != GUEST_MAC


@pytest.mark.parametrize("method", ["fork", "rootwrap"])
def test_an_unprivileged_agent_leaks_no_vf(netns, method, tmp_path):
    mac, mtu = _link(netns)

    result = _run_child(AGENT_CHILD, netns, method, str(tmp_path),
                        GUEST_MAC)

    assert result["privileged_access"] == "NetlinkAccess"
    # Without CAP_NET_ADMIN a direct restore fails: the VF stays out.
    reason = result["after_direct"]
    assert "not restored yet" in reason, reason
    # Through privsep doctor restores it and it is handed out again.
    assert result["access"] == "PrivsepNetlinkAccess"
    assert result["findings"] == [["vf-not-restored", True]]
    assert result["left"] == 0
    assert result["claimed_again"] == VF
    assert _link(netns) == (mac, mtu)


def test_a_hung_daemon_is_given_up_on_with_the_library_s_error(netns):
    mac, _ = _link(netns)
    journal = NetdevState(netdev=VF, mac=mac, mtu=JOURNAL_MTU, up=False)

    result = _run_child(HUNG_CHILD, netns, "fork", to_json(journal))

    assert result["first"] == ["MTU"]
    assert "PrivsepTimeout" in result["hung"], result["hung"]
    assert f"netdev {VF}" in result["hung"]
