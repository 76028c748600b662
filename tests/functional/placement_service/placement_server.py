"""A real OpenStack Placement service on loopback, for tests, demos and
benchmarks: openstack-placement under gunicorn with noauth2 and an SQLite
file (one worker: SQLite cannot take several workers' start-up writes),
or a PostgreSQL URL with several workers.

Needs the ``placement-server`` extra (openstack-placement, gunicorn).
The server runs in its own process group and is stopped by it.
"""

import contextlib
import dataclasses
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class PlacementServerError(Exception):
    """The test Placement server could not be started; the message says
    which step."""



START_TIMEOUT_S = 60.0
ADMIN_TOKEN = "admin"


@dataclasses.dataclass(slots=True)
class PlacementServer:
    """A running server: its URL, folder and process."""

    url: str
    workdir: pathlib.Path
    process: subprocess.Popen[bytes]

    def client_config(self) -> str:
        """A ``[placement]`` section as an operator would write it."""
        return (f"[placement]\nauth_type = admin_token\n"
                f"endpoint = {self.url}\ntoken = {ADMIN_TOKEN}\n")

    def write_client_config(self, path: pathlib.Path) -> pathlib.Path:
        path.write_text(self.client_config())
        return path

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> "PlacementServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_path() -> str | None:
    """gunicorn beside this interpreter, else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "gunicorn"
    if beside.exists():
        return str(beside)
    return shutil.which("gunicorn")


def available() -> str | None:
    """None when a server can be started here, else why not."""
    if importlib.util.find_spec("placement") is None:
        return ("openstack-placement is not installed (pip install "
                "'pci_passthrough[placement-server]')")
    if gunicorn_path() is None:
        return "gunicorn is not installed"
    return None


def write_config(workdir: pathlib.Path, connection: str | None = None,
                 sync_on_startup: bool = True) -> pathlib.Path:
    workdir.mkdir(parents=True, exist_ok=True)
    connection = connection or f"sqlite:///{workdir / 'placement.db'}"
    conf = workdir / "placement.conf"
    conf.write_text(
        "[DEFAULT]\nlog_file = "
        f"{workdir / 'placement.log'}\n"
        "[api]\nauth_strategy = noauth2\n"
        "[placement]\nrandomize_allocation_candidates = True\n"
        f"[placement_database]\nconnection = {connection}\n"
        f"sync_on_startup = {sync_on_startup}\n")
    return conf


def start(workdir: pathlib.Path, *, connection: str | None = None,
          workers: int = 1,
          timeout: float = START_TIMEOUT_S) -> PlacementServer:
    """Start the service and wait until GET / answers.

    :raises PlacementServerError: it is not installed or does not come up.
    """
    why = available()
    if why:
        raise PlacementServerError(why)
    # With a server database, the schema is made once, before the
    # workers start, rather than by each worker as it boots.
    conf = write_config(workdir, connection,
                        sync_on_startup=connection is None)
    if connection is not None:
        manage = pathlib.Path(sys.executable).parent / "placement-manage"
        done = subprocess.run(
            [str(manage), "--config-file", str(conf), "db", "sync"],
            capture_output=True, text=True, check=False)
        if done.returncode:
            raise PlacementServerError(
                f"placement-manage db sync failed: "
                       f"{done.stderr[-800:]}")
    port = free_port()
    env = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=str(workdir))
    log = (workdir / "gunicorn.log").open("ab")
    proc = subprocess.Popen(
        [str(gunicorn_path()), "-b", f"127.0.0.1:{port}", "-w",
         str(workers), "--timeout", "120", "placement.wsgi.api:application"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True, cwd=workdir)
    log.close()
    server = PlacementServer(f"http://127.0.0.1:{port}", workdir, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (workdir / "gunicorn.log").read_text(
                errors="replace")[-800:]
            raise PlacementServerError(
                f"placement under gunicorn exited with "
                       f"{proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2) as r:
                versions = json.load(r)["versions"]
                if versions:
                    return server
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    server.stop()
    raise PlacementServerError(
        f"placement did not answer on {server.url} within "
               f"{timeout:.0f} s (see {workdir / 'gunicorn.log'})")
