"""Reading a ledger's rows through a connection, each validated; a row
that is not is an error naming it and the file."""

import sqlite3
from collections.abc import Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger._file import RESTORE, LedgerFile
from pci_passthrough.ledger._rows import (
    InvalidRow,
    check_address,
    check_lease,
    check_row,
    check_v3_version,
)
from pci_passthrough.ledger.lease import LeaseStart
from pci_passthrough.ledger.record import COLUMNS, LedgerRecord

_SELECT = (f"SELECT {COLUMNS}, row_version FROM claims {{where}} "
           f"ORDER BY instance_uuid, port_index")


class RowReader:
    """The validated rows of one ledger file.

    Remembers each row of the last full load of the claims, as read, and
    its record: a row exactly as it was then (every column equal) was
    validated then, so a reload after another process's commit checks
    only the rows it changed.  Not thread safe: its ledger's lock
    serialises its use.
    """

    def __init__(self, file: LedgerFile) -> None:
        self._file = file
        self._validated: dict[tuple[Any, ...], LedgerRecord] = {}

    @property
    def path(self) -> str:
        """The ledger file, as errors name it."""
        return self._file.path

    def records(self, conn: sqlite3.Connection, where: str = "",
                args: Sequence[object] = ()) -> list[LedgerRecord]:
        """The claims, those matching ``where`` (an SQL WHERE clause with
        ``args``) when given, by instance and port."""
        known = self._validated
        seen: dict[tuple[Any, ...], LedgerRecord] = {}
        records = []
        for row in conn.execute(_SELECT.format(where=where), tuple(args)):
            rec = known.get(row)
            if rec is None:
                try:
                    check_row(*row)
                except InvalidRow as exc:
                    raise self._file.fail(
                        f"the row of address {row[2]!r}, instance "
                        f"{row[0]!r}, port {row[1]!r} is invalid: {exc}; "
                        f"{RESTORE}") from None
                rec = LedgerRecord(*row[:7])
            seen[row] = rec
            records.append(rec)
        if not where:
            self._validated = seen
        return records

    def journals(self, conn: sqlite3.Connection
                 ) -> dict[str, NetdevState]:
        """Every VF journal row, by address."""
        found = {}
        for address, text, row_version in conn.execute(
                "SELECT address, state, row_version FROM vf_journal "
                "ORDER BY address"):
            try:
                check_address(address)
                check_v3_version(row_version)
                found[address] = netdev_journal.from_json(
                    text, f"journal of device {address} in {self.path}")
            except (InvalidRow, exception.InvalidNetdevState) as exc:
                raise self._file.fail(
                    f"the VF journal row of address {address!r} is "
                    f"invalid: {exc}; {RESTORE}") from None
        return found

    def leases(self, conn: sqlite3.Connection) -> dict[str, LeaseStart]:
        """Every migration lease row: instance -> when it started."""
        found = {}
        for instance, started, boot, boot_id, row_version in conn.execute(
                "SELECT instance_uuid, started, boot, boot_id, row_version "
                "FROM leases ORDER BY instance_uuid"):
            try:
                check_lease(instance, started, boot, boot_id, row_version)
            except InvalidRow as exc:
                raise self._file.fail(
                    f"the lease row of instance {instance!r} is invalid: "
                    f"{exc}; {RESTORE}") from None
            found[instance] = LeaseStart(
                float(started), None if boot is None else float(boot),
                boot_id)
        return found
