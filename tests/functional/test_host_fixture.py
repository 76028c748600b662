"""The host fixture itself: its leftover check and its cleanup look at
the hosts of their own run only, never at other namespaces or processes
on the machine."""

import pathlib
import secrets
import subprocess
import time

import libvirt_hosts
import pytest

pytestmark = pytest.mark.functional


def sleeper(netns: str) -> subprocess.Popen[bytes]:
    """A process in the namespace, once ip has entered it and become
    sleep."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "60"])
    deadline = time.monotonic() + 10
    cmdline = pathlib.Path(f"/proc/{proc.pid}/cmdline")
    while cmdline.read_bytes() != b"sleep\x0060\x00":
        assert time.monotonic() < deadline, "ip netns exec did not run"
        time.sleep(0.01)
    return proc


def test_leftovers_are_this_runs_and_stop_touches_nothing_else(host_run):
    # Another run's host on the same machine: a namespace with the same
    # prefix and a process in it.
    foreign = f"{libvirt_hosts.NAME_PREFIX}-a-{secrets.token_hex(3)}"
    libvirt_hosts.run(["ip", "netns", "add", foreign])
    other = sleeper(foreign)
    ours = None
    host = host_run.new_host("a")
    try:
        host.create_namespace()
        ours = sleeper(host.netns)
        left = libvirt_hosts.leftovers([host])
        assert f"namespace {host.netns}" in left
        assert any(x.startswith(f"process {ours.pid}:") for x in left)
        assert not any(foreign in x or str(other.pid) in x for x in left)
        host.stop()
        # stop() ends the daemons and guests it knows; a process it does
        # not know still holds the namespace after its name is gone, and
        # is reported (by pid and start time: the namespace's inode may
        # go to another run's namespace once freed).
        assert not host.namespace_exists() and ours.pid in host.stragglers
        assert [x for x in libvirt_hosts.leftovers([host])
                if x.startswith("process ")] == [
                    f"process {ours.pid}: sleep 60"]
        ours.kill()
        ours.wait()
        assert libvirt_hosts.leftovers([host]) == []
        listed = libvirt_hosts.run(["ip", "netns", "list"]).stdout
        assert foreign in listed and other.poll() is None
    finally:
        for proc in (other, ours):
            if proc is not None:
                proc.kill()
                proc.wait()
        libvirt_hosts.run(["ip", "netns", "del", foreign], check=False)


def test_a_link_left_in_the_root_namespace_is_removed(host_run,
                                                      monkeypatch):
    # A move of a link into a namespace that fails cannot be caused
    # for real without breaking the namespace itself: the fault is
    # injected into the fixture's command runner.
    hosts = host_run.new_two_hosts()
    real_run = libvirt_hosts.run

    def refuse_moves(cmd, check=True, **kwargs):
        if cmd[:3] == ["ip", "link", "set"] and "netns" in cmd:
            raise libvirt_hosts.HostSetupError("move refused (injected)")
        return real_run(cmd, check=check, **kwargs)

    monkeypatch.setattr(libvirt_hosts, "run", refuse_moves)
    with pytest.raises(libvirt_hosts.HostSetupError, match="injected"):
        hosts.start()
    monkeypatch.undo()
    assert hosts.link_made
    assert libvirt_hosts.leftovers((hosts.a, hosts.b)) == []
