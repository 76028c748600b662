"""One row of the claims ledger, as the tracker and Placement see it."""

import dataclasses
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One device held by one port of one instance."""

    instance_uuid: str
    port_index: int
    address: str
    state: str
    flavor: str | None
    #: JSON of the port request (flavor or inline spec, mac, vlan), so a
    #: restarted agent can rebuild the port's network.
    request: str
    netdev: str | None


#: The claims table's columns, in LedgerRecord's order.
COLUMNS = ("instance_uuid, port_index, address, state, flavor, request, "
           "netdev")


#: Reads the ledger's records afresh (a writer that must not act on a
#: stale read, such as Placement's heal, calls it right before writing).
RecordSource = Callable[[], Sequence[LedgerRecord]]
