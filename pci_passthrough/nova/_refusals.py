"""The library's refusals of a host for ports, as the nova exception
each of the fork's hooks expects: nova then tries another host
(reschedule, another destination) or refuses the attach."""

import contextlib
import importlib
from collections.abc import Iterator

from pci_passthrough import exception

REFUSALS = (exception.ClaimFailed, exception.ClaimConflict,
            exception.InvalidPortRequest, exception.AllocationMismatch,
            exception.MigrationRefused)


@contextlib.contextmanager
def refused_as(nova_error: str, what: str) -> Iterator[None]:
    """A refusal of the library's, raised as nova's exception
    ``nova_error`` with the reason; nova is imported only here: the
    plugin runs in nova, its tests may not."""
    try:
        yield
    except REFUSALS as exc:
        nova_exception = importlib.import_module("nova.exception")
        raise getattr(nova_exception, nova_error)(
            reason=f"{what}: {exc}") from exc
