"""Every Placement call is bounded: a deadline for the whole call, a cap
on the body it reads, and no redirect followed.

A hostile HTTP server on 127.0.0.1 stalls after the headers, trickles
the body one byte a second, sends a chunked body without end, or
redirects to another port that records whether the token came along.
Each server gives up on its own after a while (SERVER_PATIENCE), so a
client without the bounds fails these tests rather than hanging them.
The deadlines here are short and the time checks loose: the point is
that a call ends, not how precisely."""

import contextlib
import http.server
import json
import pathlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from conf_files import (
    PLACEMENT_TOKEN,
    write_demo_host_conf,
    write_placement_conf,
)
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session
from keystoneauth1.token_endpoint import Token
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli import main
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.placement import client as placement_client
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.conf import register_placement_opts

DEADLINE = 1.0
MAX_BODY = 256 * 1024
# How long a server keeps stalling or trickling before it gives up.
SERVER_PATIENCE = 12.0
# Sent at most by the endless body before it gives up: far more than
# the cap, so a client reading it all is caught.
ENDLESS_LIMIT = 64 * 1024 * 1024
# Loose: a bounded call ends within its deadline plus this.
MARGIN = 5.0


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HostileServer"

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        getattr(self, "_" + self.server.behaviour)()
        # Given up (or done): hang up rather than wait for another
        # request on this connection.
        self.close_connection = True

    do_PUT = do_POST = do_DELETE = do_GET

    def _headers(self, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.flush()

    def _silent(self) -> None:
        self.server.stop.wait(SERVER_PATIENCE)

    def _stall(self) -> None:
        self._headers(Content_Length="2")
        self.server.stop.wait(SERVER_PATIENCE)

    def _trickle(self) -> None:
        self._headers(Content_Length=str(10 ** 6))
        end = time.monotonic() + SERVER_PATIENCE
        while time.monotonic() < end and not self.server.stop.is_set():
            self.wfile.write(b" ")
            self.wfile.flush()
            self.server.stop.wait(1.0)

    def _endless(self) -> None:
        self._headers(Transfer_Encoding="chunked")
        chunk = b"[" * 65536
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while self.server.sent < ENDLESS_LIMIT:
            self.wfile.write(frame)
            self.server.sent += len(chunk)
        self.wfile.write(b"0\r\n\r\n")

    def _redirect(self) -> None:
        self._headers(307, Location=self.server.location,
                      Content_Length="0")

    def _answer(self) -> None:
        body = json.dumps({"resource_providers": []}).encode()
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def _deep(self) -> None:
        body = b"[" * 100_000
        self._headers(Content_Length=str(len(body)))
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        # The client hanging up is what a bounded client does.
        with contextlib.suppress(OSError):
            super().handle()


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: str) -> None:
        super().__init__(("127.0.0.1", 0), _Hostile)
        self.behaviour = behaviour
        self.seen: list[dict[str, str]] = []
        self.sent = 0
        self.location = ""
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[object]:
    started: list[HostileServer] = []

    def start(behaviour: str) -> HostileServer:
        server = HostileServer(behaviour)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop.set()
        server.shutdown()
        server.server_close()


def conf_for(tmp_path: pathlib.Path, server: HostileServer,
             *, timeout: int | None = None) -> pathlib.Path:
    """A [placement] section for ``server`` with the test's bounds."""
    path = write_placement_conf(tmp_path / "placement.conf",
                                server.server_address[1], timeout=timeout)
    with path.open("a") as f:
        f.write(f"call_deadline = {DEADLINE}\n"
                f"max_response_bytes = {MAX_BODY}\n")
    return path


def client_from_conf(path: pathlib.Path) -> PlacementClient:
    conf = cfg.ConfigOpts()
    register_placement_opts(conf)
    conf(["--config-file", str(path)], default_config_files=[],
         default_config_dirs=[])
    return PlacementClient.from_conf(conf)


def nova_like_client(server: HostileServer) -> PlacementClient:
    """Over an adapter made elsewhere, as nova's report client's: no
    raise_exc=False, no timeout."""
    adapter = ks_adapter.Adapter(
        ks_session.Session(auth=Token(server.url, PLACEMENT_TOKEN)),
        service_type="placement")
    limits = placement_client.CallLimits(deadline=DEADLINE,
                                         max_body=MAX_BODY)
    return PlacementClient(adapter, limits)


def timed_get(client: PlacementClient) -> tuple[Exception, float]:
    start = time.monotonic()
    with pytest.raises(exception.PciPassthroughError) as caught:
        client.get("/resource_providers")
    return caught.value, time.monotonic() - start


def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and "GET /resource_providers" in text
    return text


@pytest.mark.parametrize("timeout", [None, 30])
@pytest.mark.parametrize("behaviour", ["silent", "stall"])
def test_a_stall_ends_at_the_deadline(serve, tmp_path, behaviour,
                                      timeout) -> None:
    """No answer at all, or headers and then nothing; keystoneauth1's
    own timeout unset or longer than the deadline."""
    server = serve(behaviour)
    client = client_from_conf(conf_for(tmp_path, server, timeout=timeout))
    error, took = timed_get(client)
    assert server.seen and took < DEADLINE + MARGIN
    assert isinstance(error, exception.PlacementUnavailable)
    assert "[placement] call_deadline" in one_line(error)


def test_a_trickled_body_ends_at_the_deadline(serve, tmp_path) -> None:
    # keystoneauth1's own timeout is per socket read: a byte a second
    # never trips it.
    server = serve("trickle")
    client = client_from_conf(conf_for(tmp_path, server, timeout=2))
    error, took = timed_get(client)
    assert server.seen and took < DEADLINE + MARGIN
    assert isinstance(error, exception.PlacementUnavailable)
    assert "[placement] call_deadline" in one_line(error)


def test_an_endless_body_is_cut_at_the_cap(serve, tmp_path) -> None:
    server = serve("endless")
    client = client_from_conf(conf_for(tmp_path, server))
    tracemalloc.start()
    try:
        error, _ = timed_get(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, exception.PlacementUnavailable)
    assert "[placement] max_response_bytes" in one_line(error)
    # The client hung up long before the server's own limit, and held
    # no more than a few times the cap.
    assert server.sent < ENDLESS_LIMIT // 2
    assert peak < 16 * MAX_BODY


def test_a_redirect_is_not_followed_and_the_token_stays(serve,
                                                        tmp_path) -> None:
    elsewhere = serve("answer")
    server = serve("redirect")
    server.location = elsewhere.url + "/resource_providers"
    client = client_from_conf(conf_for(tmp_path, server))
    error, _ = timed_get(client)
    assert server.seen[0]["X-Auth-Token"] == PLACEMENT_TOKEN
    assert elsewhere.seen == []
    assert isinstance(error, exception.PlacementUnavailable)
    text = one_line(error)
    assert "307" in text and server.location in text


@pytest.mark.parametrize("behaviour",
                         ["silent", "stall", "trickle", "endless"])
def test_an_adapter_handed_over_is_bounded_too(serve, behaviour) -> None:
    server = serve(behaviour)
    error, took = timed_get(nova_like_client(server))
    assert server.seen and took < DEADLINE + MARGIN
    assert isinstance(error, exception.PlacementUnavailable)
    one_line(error)


def test_an_adapter_handed_over_follows_no_redirect(serve) -> None:
    elsewhere = serve("answer")
    server = serve("redirect")
    server.location = elsewhere.url + "/resource_providers"
    error, _ = timed_get(nova_like_client(server))
    assert server.seen and elsewhere.seen == []
    assert server.location in one_line(error)


def test_an_answer_within_the_bounds_is_read(serve, tmp_path) -> None:
    server = serve("answer")
    client = client_from_conf(conf_for(tmp_path, server))
    assert client.get("/resource_providers").body == {
        "resource_providers": []}


def test_an_answer_nested_too_deep_for_json_is_text(serve,
                                                    tmp_path) -> None:
    server = serve("deep")
    client = client_from_conf(conf_for(tmp_path, server))
    assert client.get("/resource_providers").body == "[" * 100_000


def test_the_bounds_default_to_the_options(tmp_path) -> None:
    conf = cfg.ConfigOpts()
    register_placement_opts(conf)
    conf([], default_config_files=[], default_config_dirs=[])
    limits = placement_client.CallLimits
    assert limits.from_conf(conf) == limits()
    path = tmp_path / "p.conf"
    path.write_text("[placement]\ncall_deadline = 2.5\n"
                    "max_response_bytes = 65536\n")
    conf(["--config-file", str(path)], default_config_files=[],
         default_config_dirs=[])
    assert limits.from_conf(conf) == limits(deadline=2.5, max_body=65536)


# -- the commands --------------------------------------------------------

@pytest.fixture
def host_conf(tmp_path: pathlib.Path) -> pathlib.Path:
    st.build_tree(tmp_path / "sys", demo_hosts.DEMO_HOST_A)
    return write_demo_host_conf(tmp_path, "cmp1",
                                libvirt_uri="test:///default")


@pytest.mark.parametrize(("argv", "code"), [
    (["placement", "sync"], 1),
    (["doctor"], 2),
    (["doctor", "--fix"], 2),
])
def test_commands_against_a_stalling_placement_fail_in_one_line(
        serve, tmp_path, host_conf, capsys, argv, code) -> None:
    server = serve("stall")
    client = conf_for(tmp_path, server)
    start = time.monotonic()
    result = main.main(["--config-file", str(host_conf), "--config-file",
                        str(client), *argv])
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert result == code and server.seen
    assert took < DEADLINE + MARGIN + 5
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "[placement] call_deadline" in err


def test_closed_port_still_says_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = ks_adapter.Adapter(
        ks_session.Session(auth=Token(f"http://127.0.0.1:{port}",
                                      PLACEMENT_TOKEN)),
        service_type="placement")
    with pytest.raises(exception.PlacementUnavailable,
                       match=f"127.0.0.1:{port}"):
        PlacementClient(adapter).get("/resource_providers")
