"""The claims ledger: every claim and free, in SQLite, before the call
returns.

A ledger that is empty (a truncated file: its claims are lost), is not
SQLite, belongs to something else, has a schema this code does not know,
or holds a row that does not validate is an error naming the file (and
the row) and saying what to do.  It is never reset, since a reset would
hand allocated devices out again.

- :mod:`.store`: :class:`Ledger`, the file opened once and read and
  written under one lock;
- :mod:`.transaction`: :class:`LedgerTransaction`, the reads and writes
  of one transaction;
- :mod:`.record`: :class:`LedgerRecord`, one claim;
- :mod:`.lease`: :class:`LeaseStart`, when a migration lease started;
- :mod:`.readonly`: reading without creating or changing any file
  (``Ledger(path, readonly=True)``, for commands that only show).
"""

from pci_passthrough.ledger._file import SQLITE_MAGIC
from pci_passthrough.ledger._schema import APPLICATION_ID, SCHEMA_VERSION
from pci_passthrough.ledger.lease import LeaseStart
from pci_passthrough.ledger.record import LedgerRecord, RecordSource
from pci_passthrough.ledger.store import BUSY_TIMEOUT_S, Ledger
from pci_passthrough.ledger.transaction import LedgerTransaction
from pci_passthrough.model.states import PortState

CLAIMED = PortState.CLAIMED
PLUGGED = PortState.PLUGGED

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_S",
    "CLAIMED",
    "PLUGGED",
    "SCHEMA_VERSION",
    "SQLITE_MAGIC",
    "LeaseStart",
    "Ledger",
    "LedgerRecord",
    "LedgerTransaction",
    "RecordSource",
]
