"""Reads and writes inside one ledger transaction.

A transaction runs on the connection its ledger began it on, and reads
rows through :class:`ValidatedRows`, the one interface it has to its
ledger: it never reaches into the ledger itself.  Every write is checked
as a read would check it, so a write never leaves a ledger that cannot
be read back.
"""

import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Protocol

from pci_passthrough import exception
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger._rows import (
    InvalidRow,
    check_address,
    check_lease,
    check_row,
)
from pci_passthrough.ledger._schema import SCHEMA_VERSION
from pci_passthrough.ledger.lease import LeaseStart
from pci_passthrough.ledger.record import COLUMNS, LedgerRecord
from pci_passthrough.model.states import PortState


class ValidatedRows(Protocol):
    """What a transaction needs of its ledger: the file's name, for
    errors, and its rows read through a connection, each validated."""

    @property
    def path(self) -> str:
        """The ledger file."""
        ...

    def records(self, conn: sqlite3.Connection, where: str = "",
                args: Sequence[object] = ()) -> list[LedgerRecord]:
        """The claims matching the SQL ``where`` clause (all without)."""
        ...

    def journals(self, conn: sqlite3.Connection
                 ) -> dict[str, NetdevState]:
        """Every VF journal, by address."""
        ...

    def leases(self, conn: sqlite3.Connection
               ) -> dict[str, LeaseStart]:
        """Every migration lease: instance -> when it started."""
        ...


class LedgerTransaction:
    """Reads and writes inside one ledger transaction."""

    def __init__(self, rows: ValidatedRows,
                 conn: sqlite3.Connection) -> None:
        self._rows = rows
        self._conn = conn

    def _refuse(self, reason: str) -> exception.LedgerError:
        return exception.LedgerError(path=self._rows.path,
                                     reason=f"refusing to write {reason}")

    def records(self) -> list[LedgerRecord]:
        """Every claim, as this transaction sees them."""
        return self._rows.records(self._conn)

    def add(self, records: Sequence[LedgerRecord]) -> None:
        """Record claims; DeviceAlreadyClaimed when an address is held.

        A record that would not validate when read back is refused: the
        ledger would be unusable after it.
        """
        for rec in records:
            try:
                check_row(rec.instance_uuid, rec.port_index, rec.address,
                          rec.state, rec.flavor, rec.request, rec.netdev,
                          SCHEMA_VERSION)
            except InvalidRow as exc:
                raise self._refuse(
                    f"a claim of instance {rec.instance_uuid!r} port "
                    f"{rec.port_index!r}: {exc}") from None
            try:
                self._conn.execute(
                    f"INSERT INTO claims ({COLUMNS}, row_version) VALUES "
                    f"(?, ?, ?, ?, ?, ?, ?, ?)",
                    (*dataclasses.astuple(rec), SCHEMA_VERSION))
            except sqlite3.IntegrityError:
                holder = self._conn.execute(
                    "SELECT instance_uuid, port_index FROM claims WHERE "
                    "address = ? OR (instance_uuid = ? AND port_index = ?)",
                    (rec.address, rec.instance_uuid, rec.port_index)
                ).fetchone()
                raise exception.DeviceAlreadyClaimed(
                    address=rec.address,
                    holder=f"instance {holder[0]} port {holder[1]}"
                    if holder else "another claim") from None

    def set_state(self, instance_uuid: str, state: str) -> int:
        """Move the instance's claims to ``state``; how many moved."""
        state = PortState(state)
        cur = self._conn.execute(
            "UPDATE claims SET state = ? WHERE instance_uuid = ?",
            (state, instance_uuid))
        return cur.rowcount

    def remove_instance(self, instance_uuid: str) -> list[LedgerRecord]:
        """Delete the instance's claims and its migration lease."""
        gone = self._rows.records(self._conn, "WHERE instance_uuid = ?",
                                  (instance_uuid,))
        self._conn.execute("DELETE FROM claims WHERE instance_uuid = ?",
                           (instance_uuid,))
        self.forget_lease(instance_uuid)
        return gone

    def remove_port(self, instance_uuid: str, port_index: int
                    ) -> list[LedgerRecord]:
        """Delete one port's claim; the instance's migration lease too
        when it was the last."""
        where = "WHERE instance_uuid = ? AND port_index = ?"
        gone = self._rows.records(self._conn, where,
                                  (instance_uuid, port_index))
        self._conn.execute(f"DELETE FROM claims {where}",
                           (instance_uuid, port_index))
        if not self._conn.execute(
                "SELECT 1 FROM claims WHERE instance_uuid = ? LIMIT 1",
                (instance_uuid,)).fetchone():
            self.forget_lease(instance_uuid)
        return gone

    def set_request(self, instance_uuid: str, port_index: int,
                    request: str) -> int:
        """Replace the request one port was claimed with (its JSON);
        how many rows changed."""
        cur = self._conn.execute(
            "UPDATE claims SET request = ? WHERE instance_uuid = ? AND "
            "port_index = ?", (request, instance_uuid, port_index))
        return cur.rowcount

    def set_netdev(self, address: str, netdev: str | None) -> int:
        """The netdev name recorded for a held device (udev renamed
        it)."""
        cur = self._conn.execute(
            "UPDATE claims SET netdev = ? WHERE address = ?",
            (netdev, address))
        return cur.rowcount

    # -- VF journal ----------------------------------------------------------

    def journal(self, address: str, text: str) -> None:
        """Record the state of the device's netdev before its plug.

        A text that would not validate when read back is refused.
        """
        source = f"journal of device {address} in {self._rows.path}"
        try:
            check_address(address)
        except InvalidRow as exc:
            raise self._refuse(f"a {source}: {exc}") from None
        netdev_journal.from_json(text, source)
        self._conn.execute(
            "INSERT OR REPLACE INTO vf_journal (address, state, "
            "row_version) VALUES (?, ?, ?)", (address, text, SCHEMA_VERSION))

    def journals(self) -> dict[str, NetdevState]:
        """Every VF journal, by address."""
        return self._rows.journals(self._conn)

    def forget_journal(self, address: str) -> bool:
        """Delete the device's journal; True when there was one."""
        cur = self._conn.execute("DELETE FROM vf_journal WHERE address = ?",
                                 (address,))
        return cur.rowcount > 0

    # -- migration leases -----------------------------------------------------

    def set_lease(self, instance_uuid: str, started: LeaseStart) -> bool:
        """Start the instance's lease unless one runs already (a repeated
        call does not extend it); True when this call started it."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO leases (started, boot, boot_id, "
            "row_version, instance_uuid) VALUES (?, ?, ?, ?, ?)",
            self._lease_row(instance_uuid, started))
        return cur.rowcount > 0

    def restart_lease(self, instance_uuid: str,
                      started: LeaseStart) -> bool:
        """Move the start of the instance's lease to ``started``; False
        when it has none."""
        cur = self._conn.execute(
            "UPDATE leases SET started = ?, boot = ?, boot_id = ?, "
            "row_version = ? WHERE instance_uuid = ?",
            self._lease_row(instance_uuid, started))
        return cur.rowcount > 0

    def _lease_row(self, instance_uuid: str, started: LeaseStart
                   ) -> tuple[object, ...]:
        """The lease's columns as written, instance last; refused unless
        they would validate when read back."""
        try:
            check_lease(instance_uuid, started.wall, started.boot,
                        started.boot_id, SCHEMA_VERSION)
        except InvalidRow as exc:
            raise self._refuse(f"a lease: {exc}") from None
        return (float(started.wall),
                None if started.boot is None else float(started.boot),
                started.boot_id, SCHEMA_VERSION, instance_uuid)

    def leases(self) -> dict[str, LeaseStart]:
        """Every migration lease: instance -> when it started."""
        return self._rows.leases(self._conn)

    def forget_lease(self, instance_uuid: str) -> bool:
        """End the instance's lease; True when there was one."""
        cur = self._conn.execute(
            "DELETE FROM leases WHERE instance_uuid = ?", (instance_uuid,))
        return cur.rowcount > 0
