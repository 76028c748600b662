"""One HTTP exchange with Placement through a keystoneauth1 adapter,
bounded whatever the adapter's own settings (it may be nova's).

- A deadline for the whole call.  Each wait on the socket, connecting
  and for the answer's headers, is cut to what is left of it (or to the
  session's own ``timeout`` where shorter); the body is read in pieces
  while a timer shuts the socket down at the deadline, which ends a read
  blocked on a stalled or trickling answer.  requests' own timeout is
  per read: a byte a second never trips it.
- A cap on the body: read in pieces, never more than the cap plus one
  piece held.
- No redirect: keystoneauth1 follows one with the same headers, the
  token among them, to wherever Location says.
- keystoneauth1's own logging is off for the call: with debug logging it
  reads a JSON body whole to log it, before any of the above.
"""

import contextlib
import dataclasses
import socket
import threading
import time
from types import TracebackType
from typing import Any

from pci_passthrough import exception

_PIECE = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """What is asked, of whom, within which bounds."""

    method: str
    path: str
    url: str
    deadline: float
    max_body: int


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content: bytes


def exchange(adapter: Any, call: Call, **kwargs: Any) -> Answer:
    """Send ``call`` with ``kwargs`` (keystoneauth1's) and read the
    answer within its bounds.

    :raises PlacementDeadlineExceeded, PlacementAnswerTooLarge,
        PlacementRedirected, PlacementUnavailable:
    """
    from keystoneauth1 import exceptions as ks_exc

    ends = time.monotonic() + call.deadline
    wait = call.deadline
    session_timeout = getattr(getattr(adapter, "session", None),
                              "timeout", None)
    if isinstance(session_timeout, (int, float)) and session_timeout > 0:
        wait = min(wait, float(session_timeout))
    try:
        resp = adapter.request(call.path, call.method, stream=True,
                               redirect=False, log=False, timeout=wait,
                               **kwargs)
    except ks_exc.ClientException as exc:
        # A timeout is the deadline's unless the session's was shorter.
        if isinstance(exc, ks_exc.ConnectTimeout) and wait == call.deadline:
            raise _late(call, "waiting for the answer") from None
        raise _unavailable(
            call, " ".join(str(exc).split()) or type(exc).__name__
        ) from None
    try:
        if 300 <= resp.status_code < 400:
            location = resp.headers.get("Location") or "nowhere"
            raise exception.PlacementRedirected(
                url=call.url, method=call.method, path=call.path,
                status=resp.status_code,
                location=" ".join(str(location).split())[:300])
        return Answer(resp.status_code, _read_body(resp, call, ends))
    finally:
        resp.close()


def _read_body(resp: Any, call: Call, ends: float) -> bytes:
    left = ends - time.monotonic()
    if left <= 0:
        raise _late(call, "waiting for the answer")
    body = bytearray()
    guard = _Watchdog(resp, left)
    try:
        with guard:
            for piece in resp.iter_content(_PIECE):
                body += piece
                if len(body) > call.max_body:
                    raise exception.PlacementAnswerTooLarge(
                        url=call.url, method=call.method, path=call.path,
                        limit=call.max_body)
                # Where the socket is out of reach (an adapter over an
                # in-process Placement), the pieces are checked.
                if time.monotonic() >= ends:
                    raise _late(call, "reading the answer")
    except OSError as exc:
        # requests' errors are OSErrors: the answer broke off, or the
        # watchdog shut it.
        if guard.fired:
            raise _late(call, "reading the answer") from None
        raise _unavailable(
            call, f"the answer broke off after {len(body)} bytes: "
                  f"{' '.join(str(exc).split()) or type(exc).__name__}"
        ) from None
    if guard.fired:
        # The socket was shut: a body that seems whole may be cut short.
        raise _late(call, "reading the answer")
    return bytes(body)


class _Watchdog:
    """Shuts the answer's socket down after ``seconds`` unless left
    first: a read blocked on it then returns."""

    def __init__(self, resp: Any, seconds: float) -> None:
        connection = getattr(getattr(resp, "raw", None), "connection", None)
        self._sock: Any = getattr(connection, "sock", None)
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self.fired = False

    def __enter__(self) -> "_Watchdog":
        if self._sock is not None:
            self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        # Closed already (or no socket after all): no read is blocked.
        with contextlib.suppress(OSError, AttributeError):
            self._sock.shutdown(socket.SHUT_RDWR)


def _late(call: Call, stage: str) -> exception.PlacementDeadlineExceeded:
    return exception.PlacementDeadlineExceeded(
        url=call.url, method=call.method, path=call.path,
        limit=f"{call.deadline:g}", stage=stage)


def _unavailable(call: Call, reason: str) -> exception.PlacementUnavailable:
    return exception.PlacementUnavailable(
        url=call.url, reason=f"{call.method} {call.path}: {reason}")
