"""A private network namespace holding one veth pair, the stand-in for
a VF's netdev in the netdev-state and privsep tests, and the root check
those tests share."""

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2 import netns as pyroute2_netns


def require_root(what: str, needs: str = "network namespaces, veth"
                 ) -> None:
    """Skip with the reason without root; fail instead under CI
    (PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1)."""
    if os.geteuid() == 0:
        return
    text = f"{what} need root ({needs})"
    if os.environ.get("PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL") == "1":
        pytest.fail(text + " (PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1)",
                    pytrace=False)
    pytest.skip(text)


@contextlib.contextmanager
def veth_namespace(prefix: str, vf: str, peer: str) -> Iterator[str]:
    """A new namespace named ``<prefix>-<pid>-<random>`` holding the
    veth pair ``vf`` / ``peer`` (down); removed, with the pair, on
    exit, even after a failure.  ``prefix`` must not be "pcipt": the
    libvirt host fixtures sweep names starting with "pcipt-"."""
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    pyroute2_netns.create(name)
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            ipr.link("add", ifname=vf, kind="veth", peer={"ifname": peer})
        yield name
    finally:
        try:
            with IPRoute(netns=name, flags=0) as ipr:
                for index in ipr.link_lookup(ifname=vf):
                    ipr.link("del", index=index)  # the peer goes with it
        finally:
            pyroute2_netns.remove(name)
    assert name not in pyroute2_netns.listnetns()
