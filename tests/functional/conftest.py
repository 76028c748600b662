"""Functional tests: real libvirt daemons in network namespaces (root).

Without root, libvirtd or QEMU the tests skip with the reason; with
PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1 (CI sets it) that is a failure.
The session ends by checking that the hosts it made left nothing behind,
then removes them; other runs' hosts on the machine are never touched.
"""

import os
from collections.abc import Iterator

import libvirt_hosts
import pytest

pytestmark = pytest.mark.functional


def _require_or_skip(reasons: list[str]) -> None:
    if not reasons:
        return
    text = "real libvirt hosts unavailable: " + ", ".join(reasons)
    if os.environ.get("PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL") == "1":
        pytest.fail(text + " (PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1)",
                    pytrace=False)
    pytest.skip(text)


@pytest.fixture(scope="session")
def host_run() -> Iterator[libvirt_hosts.HostRun]:
    """This session's folder and every host made in it."""
    _require_or_skip(libvirt_hosts.missing_requirements())
    run = libvirt_hosts.HostRun(prefix="pcipt-functional-")
    yield run
    # What the fixtures failed to remove is reported, but never left on
    # the machine.
    left = run.leftovers()
    remaining = run.close()
    assert not left, f"left behind: {left}"
    assert not remaining, f"cannot remove: {remaining}"


@pytest.fixture
def host_a(host_run: libvirt_hosts.HostRun
           ) -> Iterator[libvirt_hosts.LibvirtHost]:
    """A started host with two VF stand-ins, vfa0 and vfa1."""
    with libvirt_hosts.libvirt_host(host_run, "a",
                                    vf_netdevs=("vfa0", "vfa1")) as host:
        yield host


@pytest.fixture(scope="module")
def two_hosts(host_run: libvirt_hosts.HostRun
              ) -> Iterator[libvirt_hosts.TwoHosts]:
    """Hosts A (four VF stand-ins) and B (three), ready to migrate."""
    hosts = host_run.new_two_hosts(
        vf_netdevs_a=("vfa0", "vfa1", "vfa2", "vfa3"),
        vf_netdevs_b=("vfb0", "vfb1", "vfb2"))
    with hosts:
        yield hosts
