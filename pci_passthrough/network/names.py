"""Per-instance network names: ``<prefix><instance uuid>-<port index>``.

Names are built only from a canonical UUID and a non-negative integer, so
nothing an API caller sends can reach libvirt's XML unchecked.
"""

import re

from pci_passthrough import exception
from pci_passthrough.model.instance_id import canonical_uuid

_SUFFIX = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"-(0|[1-9][0-9]{0,3})\Z")


def network_name(prefix: str, instance_uuid: str, port_index: int) -> str:
    """The network of one port of one instance.

    :raises InvalidInstanceId: not a canonical UUID.
    :raises InvalidPortRequest: not an integer from 0 to 9999.
    """
    uuid = canonical_uuid(instance_uuid)
    if (not isinstance(port_index, int) or isinstance(port_index, bool)
            or not 0 <= port_index <= 9999):
        raise exception.InvalidPortRequest(
            port=port_index, reason="a port index is an integer from 0 to "
                                    "9999")
    return f"{prefix}{uuid}-{port_index}"


def parse_network_name(prefix: str, name: str) -> tuple[str, int] | None:
    """(instance uuid, port index) of a name network_name() made; None for
    any other name."""
    if not name.startswith(prefix):
        return None
    match = _SUFFIX.match(name[len(prefix):])
    if not match:
        return None
    return match.group(1), int(match.group(2))
