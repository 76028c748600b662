"""Instance ids: canonical UUIDs only.

Network names and ledger rows are built from them, so anything that is not
exactly a lower-case 8-4-4-4-12 UUID is refused rather than normalised.
"""

import re

from pci_passthrough import exception

_CANONICAL = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def canonical_uuid(value: object) -> str:
    """``value`` when it is a canonical UUID; InvalidInstanceId if not."""
    if isinstance(value, str) and _CANONICAL.match(value):
        return value
    raise exception.InvalidInstanceId(value=value)
