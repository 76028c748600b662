"""What a ledger row may hold, checked at every load and every write.

A row that does not validate is never used: the tracker would hand out a
device, build a network name or a libvirt XML from it.  The checks are
plain comparisons and one JSON round trip, cheap enough to run on every
row of every load (tools/bench/bench_ledger.py measures them).
"""

import json
import re
from typing import Any

from pci_passthrough import exception
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.netdev_name import is_valid_netdev_name
from pci_passthrough.model.states import PortState

#: The schema versions a row may have been written under (rows of older
#: schemas are rewritten by the migration).
ROW_VERSIONS = frozenset({2, 3, 4})
#: Those a VF journal or lease row may have: both tables date from
#: version 3.
V3_ROW_VERSIONS = frozenset({3, 4})
MAX_PORT_INDEX = 9999

_STATES = frozenset(s.value for s in PortState)
# The canonical form pci_address.normalize_address writes: a four-digit
# domain, or five to eight digits without a leading zero (Intel VMD), a
# slot up to 1f, a function up to 7, lower case.
_ADDRESS = re.compile(
    r"(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4,7}):[0-9a-f]{2}:[01][0-9a-f]"
    r"\.[0-7]\Z")
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_REQUEST_KEYS = frozenset({"flavor", "spec", "mac", "vlan",
                           "needs_netdev"})
# A request naming its Neutron port has one key more.
_PORT_REQUEST_KEYS = _REQUEST_KEYS | {"port_id"}


class InvalidRow(ValueError):
    """A row that does not validate; str() says which field and why."""


def check_address(address: Any) -> None:
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise InvalidRow(f"address {_show(address)} is not a canonical PCI "
                         f"address such as 0000:3b:02.0")


def check_lease(instance_uuid: Any, started: Any, boot: Any,
                boot_id: Any, row_version: Any) -> None:
    """Raise InvalidRow unless a lease row is what this library
    writes: a start on the wall clock, and on a boot clock (both the
    reading and the boot's id) or on none."""
    if not isinstance(instance_uuid, str) or not _UUID.match(
            instance_uuid):
        raise InvalidRow(f"instance {_show(instance_uuid)} is not a "
                         f"canonical UUID")
    if not _seconds(started):
        raise InvalidRow(f"start {_show(started)} is not a time in "
                         f"seconds since the epoch")
    check_v3_version(row_version)
    if boot is None and boot_id is None:
        return
    if row_version == 3:
        raise InvalidRow("a row of version 3 has no boot clock reading")
    if not _seconds(boot):
        raise InvalidRow(f"boot clock start {_show(boot)} is not a time "
                         f"in seconds since boot")
    if not isinstance(boot_id, str) or not _UUID.match(boot_id):
        raise InvalidRow(f"boot id {_show(boot_id)} is not a canonical "
                         f"UUID")


def check_v3_version(row_version: Any) -> None:
    """Raise InvalidRow unless a VF journal or lease row has a version
    its table had."""
    if type(row_version) is not int or \
            row_version not in V3_ROW_VERSIONS:
        raise InvalidRow(f"row version {_show(row_version)} is not one of "
                         f"{', '.join(map(str, sorted(V3_ROW_VERSIONS)))}")


def _seconds(value: Any) -> bool:
    # Not NaN nor infinite, and not before the epoch (nor the boot);
    # bool is an int, but no time.
    return type(value) in (int, float) and 0 <= value < 1e11


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_row(instance_uuid: Any, port_index: Any, address: Any,
              state: Any, flavor: Any, request: Any, netdev: Any,
              row_version: Any) -> None:
    """Raise InvalidRow unless every field is what this library writes."""
    check_address(address)
    if not isinstance(instance_uuid, str) or not _UUID.match(
            instance_uuid):
        raise InvalidRow(f"instance {_show(instance_uuid)} is not a "
                         f"canonical UUID")
    if type(port_index) is not int or not \
            0 <= port_index <= MAX_PORT_INDEX:
        raise InvalidRow(f"port index {_show(port_index)} is not an "
                         f"integer from 0 to {MAX_PORT_INDEX}")
    if state not in _STATES or not isinstance(state, str):
        raise InvalidRow(f"state {_show(state)} is not one of "
                         f"{', '.join(sorted(_STATES))}")
    if flavor is not None and not isinstance(flavor, str):
        raise InvalidRow(f"flavor {_show(flavor)} is not text")
    if netdev is not None and not is_valid_netdev_name(netdev):
        raise InvalidRow(f"netdev {_show(netdev)} is not a valid Linux "
                         f"interface name")
    if type(row_version) is not int or row_version not in ROW_VERSIONS:
        raise InvalidRow(f"row version {_show(row_version)} is not one "
                         f"this version of pci_passthrough knows "
                         f"({', '.join(map(str, sorted(ROW_VERSIONS)))})")
    check_request(request, port_index, flavor)


# What PortRequest.to_json writes for a flavor request (sort_keys, the
# default separators and ASCII escapes): most rows take this path, which
# costs a match and a comparison instead of a JSON round trip.
_FLAVOR_REQUEST = re.compile(
    r'\{"flavor": ("(?:[^"\\\x00-\x1f\x7f-\uffff]|\\.)*"), '
    r'"mac": (?:null|"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"), '
    r'"needs_netdev": (?:true|false), '
    r'(?:"port_id": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
    r'[0-9a-f]{12}", )?"spec": null, '
    r'"vlan": (?:null|([1-9][0-9]{0,3}))\}\Z')


def check_request(text: Any, index: int, flavor: str | None) -> None:
    """The text is exactly what PortRequest.to_json writes for a request
    of this port and flavor: the full check, after a fast path for the
    common flavor requests."""
    if isinstance(text, str) and isinstance(flavor, str):
        match = _FLAVOR_REQUEST.match(text)
        if match is not None and match[1] == json.dumps(flavor) and (
                match[2] is None or int(match[2]) <= 4094):
            return
    check_request_json(text, index, flavor)


def check_request_json(text: Any, index: int, flavor: str | None) -> None:
    """The full check: the text is exactly what PortRequest.to_json
    writes for a request of this port and flavor."""
    bad = f"request {_show(text)} is not the JSON of a port request"
    if not isinstance(text, str):
        raise InvalidRow(bad)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRow(bad) from None
    if not isinstance(data, dict) or data.keys() not in (
                _REQUEST_KEYS, _PORT_REQUEST_KEYS) or \
            type(data["needs_netdev"]) is not bool or \
            not isinstance(data["flavor"], (str, type(None))) or \
            not isinstance(data["spec"], (dict, type(None))) or \
            type(data.get("port_id", "")) is not str:
        raise InvalidRow(bad)
    try:
        port = PortRequest(index=index, flavor=data["flavor"],
                           spec=data["spec"], mac=data["mac"],
                           vlan=data["vlan"],
                           needs_netdev=data["needs_netdev"],
                           port_id=data.get("port_id"))
    except exception.InvalidPortRequest as exc:
        raise InvalidRow(f"{bad}: {exc}") from None
    # Exactly what PortRequest.to_json writes: no extra spacing, order or
    # case that a hand edit would leave.
    if port.to_json() != text:
        raise InvalidRow(f"{bad} as pci_passthrough writes it")
    if port.flavor != flavor:
        raise InvalidRow(f"request flavor {_show(port.flavor)} differs "
                         f"from the row's flavor {_show(flavor)}")
