"""A small Placement REST client over a keystoneauth1 adapter.

Every call sends microversion 1.39 and is bounded (:class:`CallLimits`:
a deadline for the whole call, a cap on the answer read, no redirect
followed), also over an adapter made elsewhere.  Placement unreachable,
too slow, answering too much, redirecting or answering 5xx is
PlacementUnavailable (a subclass names which bound); an answer the
caller did not expect is PlacementRequestFailed naming the call and
Placement's detail.
"""

import dataclasses
import json
import time
from collections.abc import Collection
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.placement import _exchange
from pci_passthrough.placement.conf import (
    CALL_DEADLINE,
    MAX_RESPONSE_BYTES,
    PLACEMENT_GROUP,
    register_placement_opts,
)
from pci_passthrough.placement.requests import MICROVERSION

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any

    def detail(self) -> str:
        """Placement's error text (its JSON errors' detail), one line."""
        body = self.body
        if isinstance(body, dict) and body.get("errors"):
            return "; ".join(
                " ".join(str(e.get("detail", e.get("title", ""))).split())
                for e in body["errors"])
        return " ".join(str(body or "").split())[:300]

    @property
    def code(self) -> str | None:
        """Placement's error code (such as placement.concurrent_update)."""
        body = self.body
        if isinstance(body, dict) and body.get("errors"):
            code = body["errors"][0].get("code")
            return str(code) if code else None
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class CallLimits:
    """The bounds of every call: ``deadline`` seconds for the whole call,
    at most ``max_body`` bytes of answer read."""

    deadline: float = CALL_DEADLINE
    max_body: int = MAX_RESPONSE_BYTES

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> "CallLimits":
        """``[placement] call_deadline`` and ``max_response_bytes``."""
        register_placement_opts(conf)
        return cls(deadline=conf.placement.call_deadline,
                   max_body=conf.placement.max_response_bytes)


class PlacementClient:
    """Calls to one Placement service.

    :param adapter: a keystoneauth1 Adapter for the placement service
        (nova's report client's will do: every call passes
        raise_exc=False, and the bounds, itself).
    :param limits: the bounds of each call; the options' defaults when
        not given (``CallLimits.from_conf(conf)`` for the options).
    """

    def __init__(self, adapter: Any,
                 limits: CallLimits | None = None) -> None:
        self._adapter = adapter
        self._limits = limits or CallLimits()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> "PlacementClient":
        """The client the ``[placement]`` options describe."""
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1 import loading as ks_loading

        register_placement_opts(conf)
        try:
            auth = ks_loading.load_auth_from_conf_options(
                conf, PLACEMENT_GROUP)
            if auth is None:
                raise exception.PlacementUnavailable(
                    url="[placement]",
                    reason="no auth_type is set in the [placement] "
                           "options; set it (password, or admin_token with "
                           "endpoint and token) as for nova-compute")
            session = ks_loading.load_session_from_conf_options(
                conf, PLACEMENT_GROUP, auth=auth)
            adapter = ks_loading.load_adapter_from_conf_options(
                conf, PLACEMENT_GROUP, session=session, auth=auth,
                raise_exc=False)
        except (ks_exc.ClientException, cfg.Error) as exc:
            raise exception.PlacementUnavailable(
                url="[placement]",
                reason=f"the [placement] options are incomplete or "
                       f"wrong: {exc}") from None
        return cls(adapter, CallLimits.from_conf(conf))

    @property
    def url(self) -> str:
        try:
            return str(self._adapter.get_endpoint() or "placement")
        except Exception:  # only for messages: never fail on it
            return "placement"

    def call(self, method: str, path: str, body: Any = None,
             expect: Collection[int] = (200,)) -> Response:
        """One call; an unexpected status raises.

        :raises PlacementUnavailable: no answer, a timeout, a bound
            reached, a redirect or a 5xx.
        :raises PlacementRequestFailed: a status not in ``expect``.
        """
        # raise_exc per call: an adapter made elsewhere (nova's report
        # client's) may raise on 4xx, which would turn a 409 to retry
        # or a 404 into "unavailable".
        kwargs: dict[str, Any] = {"microversion": MICROVERSION,
                                  "raise_exc": False}
        if body is not None:
            kwargs["json"] = body
        started = time.monotonic()
        answer = _exchange.exchange(
            self._adapter,
            _exchange.Call(method, path, self.url, self._limits.deadline,
                           self._limits.max_body),
            **kwargs)
        result = Response(answer.status, _parse(answer.content))
        if answer.status >= 500:
            raise exception.PlacementUnavailable(
                url=self.url, reason=f"{method} {path} answered HTTP "
                                     f"{answer.status} "
                                     f"{result.detail()}".rstrip())
        if answer.status not in expect:
            raise exception.PlacementRequestFailed(
                method=method, path=path, status=answer.status,
                detail=result.detail())
        LOG.debug("%s %s: %s, %d bytes in %.3f s", method, path,
                  answer.status, len(answer.content),
                  time.monotonic() - started)
        return result

    def get(self, path: str, expect: Collection[int] = (200,)) -> Response:
        return self.call("GET", path, expect=expect)

    def put(self, path: str, body: Any,
            expect: Collection[int] = (200,)) -> Response:
        return self.call("PUT", path, body, expect)

    def post(self, path: str, body: Any,
             expect: Collection[int] = (200,)) -> Response:
        return self.call("POST", path, body, expect)

    def delete(self, path: str,
               expect: Collection[int] = (204,)) -> Response:
        return self.call("DELETE", path, expect=expect)


def _parse(content: bytes) -> Any:
    """JSON, or the text when it is not (None when empty)."""
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than the parser goes.
        return content.decode("utf-8", errors="replace")


def dumps(body: Any) -> str:
    return json.dumps(body, sort_keys=True)
