"""A small Placement REST client over a keystoneauth1 adapter.

Every call sends microversion 1.39.  Placement unreachable, timing out or
answering 5xx is PlacementUnavailable; an answer the caller did not
expect is PlacementRequestFailed naming the call and Placement's detail.
"""

import dataclasses
import json
from collections.abc import Collection
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.placement.conf import (
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


class PlacementClient:
    """Calls to one Placement service.

    :param adapter: a keystoneauth1 Adapter for the placement service
        (nova's report client's will do: every call passes
        raise_exc=False itself).
    """

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

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
        return cls(adapter)

    @property
    def url(self) -> str:
        try:
            return str(self._adapter.get_endpoint() or "placement")
        except Exception:  # only for messages: never fail on it
            return "placement"

    def call(self, method: str, path: str, body: Any = None,
             expect: Collection[int] = (200,)) -> Response:
        """One call; an unexpected status raises.

        :raises PlacementUnavailable: no answer, a timeout or a 5xx.
        :raises PlacementRequestFailed: a status not in ``expect``.
        """
        from keystoneauth1 import exceptions as ks_exc

        # raise_exc per call: an adapter made elsewhere (nova's report
        # client's) may raise on 4xx, which would turn a 409 to retry
        # or a 404 into "unavailable".
        kwargs: dict[str, Any] = {"microversion": MICROVERSION,
                                  "raise_exc": False}
        if body is not None:
            kwargs["json"] = body
        try:
            resp = self._adapter.request(path, method, **kwargs)
        except ks_exc.ClientException as exc:
            raise exception.PlacementUnavailable(
                url=self.url,
                reason=" ".join(str(exc).split()) or type(exc).__name__
            ) from None
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = resp.text
        result = Response(resp.status_code, data)
        if resp.status_code >= 500:
            raise exception.PlacementUnavailable(
                url=self.url, reason=f"{method} {path} answered HTTP "
                                     f"{resp.status_code} "
                                     f"{result.detail()}".rstrip())
        if resp.status_code not in expect:
            raise exception.PlacementRequestFailed(
                method=method, path=path, status=resp.status_code,
                detail=result.detail())
        LOG.debug("%s %s: %s", method, path, resp.status_code)
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


def dumps(body: Any) -> str:
    return json.dumps(body, sort_keys=True)
