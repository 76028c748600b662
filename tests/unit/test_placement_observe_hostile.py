"""doctor reads Placement through the real client (keystoneauth1 over
HTTP) from a server that answers whatever hypothesis makes of
Placement's bodies: a wrong type anywhere, a missing key, text that is
not JSON, an error status.  A real Placement never answers so; this
small HTTP server on 127.0.0.1 stands in for a broken or hostile one.

The invariant: observe() returns what it read or raises one of the
Placement errors naming the call; never another exception, never a
hang (the client's timeout is 2 s)."""

import http.server
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conf_files import write_placement_conf
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.doctor.placement_audit import Observed, audit, observe
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.conf import register_placement_opts
from pci_passthrough.placement.tree import PciProvider, ProviderTree

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "60"))
ROOT = "0b7e5a52-9a7c-4f43-8d8f-1f3a3e0e0001"
CHILD = "0b7e5a52-9a7c-4f43-8d8f-1f3a3e0e0002"
STRANGER = "0b7e5a52-9a7c-4f43-8d8f-1f3a3e0e0003"
TREE = ProviderTree("cmp1", (PciProvider(
    "cmp1_0000:3B:00.0", "0000:3b:00.0", "CUSTOM_X",
    frozenset({"CUSTOM_PCIPT_SRIOV_VF"}), ("0000:3b:02.0",)),))


#: The host's provider names: one in its tree, one a stranger holds.
NAMES = ("cmp1_0000:3B:00.0", "cmp1_0000:5E:00.0")


def placement_like() -> dict[str, Any]:
    """What a real Placement answers for host cmp1 with one child."""
    return {
        "name": {"resource_providers": [{"uuid": ROOT, "name": "cmp1"}]},
        "tree": {"resource_providers": [
            {"uuid": ROOT, "name": "cmp1"},
            {"uuid": CHILD, "name": "cmp1_0000:3B:00.0"}]},
        # GET /resource_providers?name=cmp1_0000:5E:00.0: a stranger.
        "holder": {"resource_providers": [
            {"uuid": STRANGER, "name": "cmp1_0000:5E:00.0",
             "root_provider_uuid": STRANGER,
             "parent_provider_uuid": None}]},
        "inventories": {"inventories": {"CUSTOM_X": {"total": 4,
                                                     "reserved": 0}},
                        "resource_provider_generation": 1},
        "traits": {"traits": ["CUSTOM_PCIPT_SRIOV_VF"],
                   "resource_provider_generation": 1},
        "allocations": {"allocations": {STRANGER: {
            "resources": {"CUSTOM_X": 1}}},
            "resource_provider_generation": 1},
        "consumer": {"allocations": {}, "consumer_type": "INSTANCE"},
    }


def route(path: str) -> str:
    if path == "/resource_providers?name=cmp1":
        return "name"
    if path.startswith("/resource_providers?name="):
        return "holder"
    if path.startswith("/resource_providers?in_tree="):
        return "tree"
    if path.startswith("/allocations/"):
        return "consumer"
    return path.rsplit("/", 1)[-1]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = self.server.answers.get(  # type: ignore[attr-defined]
            route(self.path), (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.answers = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> PlacementClient:
    path = write_placement_conf(
        tmp_path_factory.mktemp("hostile") / "placement.conf",
        server.server_address[1], timeout=2)
    conf = cfg.ConfigOpts()
    register_placement_opts(conf)
    conf(["--config-file", str(path)], default_config_files=[],
         default_config_dirs=[])
    return PlacementClient.from_conf(conf)


def serve(server, answers: dict[str, Any]) -> None:
    server.answers = {
        key: (200, json.dumps(body).encode()) if not isinstance(
            body, tuple) else body
        for key, body in answers.items()}


def test_a_well_formed_answer_is_read(server, client) -> None:
    serve(server, placement_like())
    observed = observe(client, "cmp1", names=NAMES)
    assert observed.root_uuid == ROOT
    (child,) = observed.providers.values()
    assert child.owned and child.allocations == {STRANGER: {"CUSTOM_X": 1}}
    assert observed.consumer_types == {STRANGER: "INSTANCE"}
    (taken,) = observed.elsewhere.values()
    assert (taken.name, taken.uuid, taken.parent_uuid) == (
        "cmp1_0000:5E:00.0", STRANGER, None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def corrupted(draw: st.DrawFn) -> dict[str, Any]:
    """Placement's answers with one to three places replaced by any JSON
    value, a key dropped, or an answer that is not JSON or an error."""
    answers = placement_like()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(answers)))
        body = answers[key]
        if isinstance(body, tuple):
            continue
        how = draw(st.sampled_from(["value", "drop", "raw", "status"]))
        if how == "raw":
            answers[key] = (200, draw(st.binary(max_size=16)))
            continue
        if how == "status":
            answers[key] = (draw(st.sampled_from([400, 404, 409, 500,
                                                  503])), b"{}")
            continue
        path = draw(st.sampled_from(_paths(body)))
        if not path:
            answers[key] = draw(JSON)
            continue
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if how == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return answers


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(corrupted())
def test_any_answer_is_read_or_refused_naming_the_call(
        server, client, answers) -> None:
    serve(server, answers)
    try:
        observed = observe(client, "cmp1", names=NAMES)
    except (exception.PlacementRequestFailed,
            exception.PlacementUnavailable) as exc:
        assert "/resource_providers" in str(exc) or \
            "/allocations/" in str(exc) or "HTTP" in str(exc)
        return
    assert isinstance(observed, Observed)
    for provider in observed.providers.values():
        assert all(isinstance(t, str) for t in provider.traits)
        for resources in provider.allocations.values():
            assert all(isinstance(n, int) and n >= 0
                       for n in resources.values())
    # And what was read compares without a traceback.
    for finding in audit(TREE, [], observed):
        assert finding.subject and finding.problem
