"""Configuration files as an operator writes them, for the tests that
hand one to pci-passthrough (in process or as a subprocess) or to
oslo.config: a host's [pci_passthrough] section, demo host A's, and a
[placement] client section for a Placement on loopback (a real one, a
fake one, or a port nothing listens on).

Shared by tests/unit and tests/functional: pytest puts tests/ on
sys.path (``pythonpath`` in pyproject.toml), so both import it by name
(``from conf_files import write_host_conf``)."""

import os
import pathlib
import socket
from collections.abc import Iterable

from pci_passthrough.demo import hosts as demo_hosts

PLACEMENT_TOKEN = "admin"

StrPath = str | os.PathLike[str]


def write_section(path: pathlib.Path, *lines: str) -> pathlib.Path:
    """Write ``path``: a [pci_passthrough] section holding ``lines``
    as given (``"name = value"``, valid or not)."""
    path.write_text("[pci_passthrough]\n" + "\n".join(lines) + "\n")
    return path


def write_host_conf(path: pathlib.Path, *, sysfs_root: StrPath,
                    state_path: StrPath,
                    device_specs: Iterable[str] = (),
                    flavors: Iterable[str] = (),
                    **options: object) -> pathlib.Path:
    """Write ``path``: a host's [pci_passthrough] section with its sysfs
    root and ledger, each of ``options`` (``name = value``), then one
    device_spec and one flavor line per entry, in order."""
    lines = [f"sysfs_root = {sysfs_root}", f"state_path = {state_path}"]
    lines += [f"{name} = {value}" for name, value in options.items()]
    lines += [f"device_spec = {spec}" for spec in device_specs]
    lines += [f"flavor = {flavor}" for flavor in flavors]
    return write_section(path, *lines)


def write_demo_host_conf(workdir: pathlib.Path, nodename: str,
                         **options: object) -> pathlib.Path:
    """Write ``workdir``/host.conf for demo host A laid out in
    ``workdir`` (its sysfs tree in sys/, its ledger claims.sqlite3):
    node name ``nodename``, the demo's device_spec and flavors, and
    ``options``.  The tree itself is the caller's to build."""
    return write_host_conf(
        workdir / "host.conf", sysfs_root=workdir / "sys",
        state_path=workdir / "claims.sqlite3",
        device_specs=demo_hosts.DEMO_DEVICE_SPECS,
        flavors=demo_hosts.DEMO_FLAVORS, nodename=nodename, **options)


def write_placement_conf(path: pathlib.Path, port: int, *,
                         timeout: int | None = None) -> pathlib.Path:
    """Write ``path``: a [placement] section for a Placement at
    http://127.0.0.1:``port`` with keystoneauth1's admin_token auth,
    and ``timeout`` seconds per request when given."""
    text = (f"[placement]\nauth_type = admin_token\nendpoint = "
            f"http://127.0.0.1:{port}\ntoken = {PLACEMENT_TOKEN}\n")
    if timeout is not None:
        text += f"timeout = {timeout}\n"
    path.write_text(text)
    return path


def closed_port() -> int:
    """A loopback TCP port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
