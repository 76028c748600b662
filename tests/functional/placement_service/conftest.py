"""A real OpenStack Placement (openstack-placement under gunicorn, SQLite,
noauth2, one worker) for the whole session, reached over HTTP through
keystoneauth1 as an operator configures it: a config file with
``[placement] auth_type = admin_token``, ``endpoint`` and ``token``.

Needs the placement-server extra, not root.  Without it the tests skip
with the reason; with PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1 (CI) that is a
failure.  Each test reports hosts under node names of its own, so tests
share the server without seeing each other's providers.
"""

import itertools
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator

import placement_server
import pytest
from oslo_config import cfg

from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.conf import register_placement_opts

_names = itertools.count()


@pytest.fixture(scope="session")
def placement_installed() -> None:
    """The Placement server package is installed; under CI
    (PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1) its absence is a failure."""
    why = placement_server.available()
    if why:
        text = f"real Placement unavailable: {why}"
        if os.environ.get("PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL") == "1":
            pytest.fail(text + " (PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1)",
                        pytrace=False)
        pytest.skip(text)


@pytest.fixture(scope="session")
def placement(placement_installed: None
              ) -> Iterator[placement_server.PlacementServer]:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pcipt-placement-"))
    try:
        with placement_server.start(workdir) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def placement_conf_file(placement: placement_server.PlacementServer,
                        tmp_path_factory: pytest.TempPathFactory
                        ) -> pathlib.Path:
    path = tmp_path_factory.mktemp("placement-client") / "placement.conf"
    return placement.write_client_config(path)


@pytest.fixture
def client(placement_conf_file: pathlib.Path) -> PlacementClient:
    """A client configured from the operator's config file."""
    conf = cfg.ConfigOpts()
    register_placement_opts(conf)
    conf(["--config-file", str(placement_conf_file)],
         default_config_files=[], default_config_dirs=[])
    return PlacementClient.from_conf(conf)


@pytest.fixture
def nodename() -> Callable[[], str]:
    """A fresh compute node name per call."""
    return lambda: f"cmp{os.getpid()}-{next(_names)}"
