"""Functional tests: real libvirt daemons in network namespaces (root).

Without root, libvirtd or QEMU the tests skip with the reason; with
PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1 (CI sets it) that is a failure.
The session ends by checking that nothing was left behind.
"""

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from pci_passthrough.fixtures import libvirt_hosts

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
def host_workdir() -> Iterator[pathlib.Path]:
    _require_or_skip(libvirt_hosts.missing_requirements())
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pcipt-functional-"))
    libvirt_hosts.remove_stale()
    yield workdir
    try:
        left = libvirt_hosts.leftovers(workdir)
    finally:
        # Reported below, but never left on the machine.
        libvirt_hosts.remove_stale(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    assert not left, f"left behind: {left}"


@pytest.fixture
def host_a(host_workdir: pathlib.Path
           ) -> Iterator[libvirt_hosts.LibvirtHost]:
    """A started host with two VF stand-ins, vfa0 and vfa1."""
    with libvirt_hosts.libvirt_host(host_workdir, "a",
                                    vf_netdevs=("vfa0", "vfa1")) as host:
        yield host


@pytest.fixture(scope="module")
def two_hosts(host_workdir: pathlib.Path
              ) -> Iterator[libvirt_hosts.TwoHosts]:
    """Hosts A (four VF stand-ins) and B (three), ready to migrate."""
    hosts = libvirt_hosts.TwoHosts(
        host_workdir, vf_netdevs_a=("vfa0", "vfa1", "vfa2", "vfa3"),
        vf_netdevs_b=("vfb0", "vfb1", "vfb2"))
    with hosts:
        yield hosts
