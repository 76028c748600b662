"""The ledger: its SQLite file, opened (created, migrated, checked) once,
read and written under one lock.

WAL journal, one transaction per operation.  synchronous=NORMAL: a
committed transaction survives a crash of the process (the agent, the
CLI); after a power loss the last transactions before it may be lost,
never half of one.  A UNIQUE constraint on the device address makes it
impossible, even across processes, for two claims to hold one device.
"""

import contextlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger._file import (
    ROLLED_BACK,
    LedgerFile,
    rollback,
)
from pci_passthrough.ledger._open import open_writable
from pci_passthrough.ledger._reader import RowReader
from pci_passthrough.ledger.lease import LeaseStart
from pci_passthrough.ledger.readonly import read_snapshot
from pci_passthrough.ledger.record import LedgerRecord
from pci_passthrough.ledger.transaction import LedgerTransaction

T = TypeVar("T")
BUSY_TIMEOUT_S = 5.0


class Ledger:
    """The SQLite ledger at ``path``.

    Thread safe: one connection, used under a lock.  Several processes may
    open the same file; writers are serialised by BEGIN IMMEDIATE.

    :param readonly: only read: a missing file reads as no claims, nothing
        is ever created or written, and ``transaction()`` raises
        LedgerError.  The first ``records()`` answers with what the open
        read; each later one reads the file afresh.
    """

    def __init__(self, path: str | os.PathLike[str],
                 busy_timeout: float = BUSY_TIMEOUT_S, *,
                 readonly: bool = False) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self._file = LedgerFile(self.path, busy_timeout)
        self._rows = RowReader(self._file)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # The rows last validated, with the data_version read before them;
        # cleared by this connection's own transactions, which leave
        # data_version as it is.
        self._cache: tuple[int, list[LedgerRecord]] | None = None
        self._reads = itertools.count(1)
        # A read-only ledger's first records() answers with what the open
        # read.
        self._first: list[LedgerRecord] | None = None
        if readonly:
            # Refuse an unusable file now, as a writable open would.
            self._first = self._snapshot_records()
        else:
            self._conn, self._cache = open_writable(self._file,
                                                    self._versioned_records)

    def _versioned_records(self, conn: sqlite3.Connection
                           ) -> tuple[int, list[LedgerRecord]]:
        data_version: int = conn.execute(
            "PRAGMA data_version").fetchone()[0]
        return data_version, self._rows.records(conn)

    def _snapshot_records(self) -> list[LedgerRecord]:
        none: list[LedgerRecord] = []
        return self._snapshot(self._rows.records, none)

    def _snapshot(self, read: Callable[[sqlite3.Connection], T],
                  missing: T) -> T:
        return read_snapshot(self._file, read, missing)

    # -- reading -----------------------------------------------------------

    def records(self) -> list[LedgerRecord]:
        """Every claim, by instance and port."""
        with self._lock:
            if self._conn is None:
                first, self._first = self._first, None
                return first if first is not None else \
                    self._snapshot_records()
            try:
                version = self._conn.execute(
                    "PRAGMA data_version").fetchone()[0]
                if self._cache is not None and self._cache[0] == version:
                    return list(self._cache[1])
                records = self._rows.records(self._conn)
                self._cache = (version, records)
                return list(records)
            except sqlite3.Error as exc:
                raise self._file.error("cannot read it", exc) from exc

    def journals(self) -> dict[str, NetdevState]:
        """address -> the state journalled before its plug, for every VF
        not yet restored."""
        return self._read_extra(self._rows.journals)

    def leases(self) -> dict[str, LeaseStart]:
        """instance -> when its migration lease started."""
        return self._read_extra(self._rows.leases)

    def _read_extra(self, read: Callable[[sqlite3.Connection],
                                         dict[str, T]]) -> dict[str, T]:
        with self._lock:
            if self._conn is not None:
                try:
                    return read(self._conn)
                except sqlite3.Error as exc:
                    raise self._file.error("cannot read it", exc) from exc
            return self._snapshot(read, {})

    def data_version(self) -> int:
        """Changes whenever another connection, in this process or
        another, has committed; a reader's own commits leave it as is.

        A read-only ledger cannot tell and changes at every call, so that
        its readers always read afresh."""
        with self._lock:
            if self._conn is None:
                return next(self._reads)
            value: int = self._conn.execute(
                "PRAGMA data_version").fetchone()[0]
            return value

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK when the body raises."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise self._file.fail("it is open read-only; this command "
                                      "or call cannot change claims")
            self._cache = None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._file.error("cannot start a transaction",
                                       exc) from exc
            try:
                yield LedgerTransaction(self._rows, conn)
            except sqlite3.Error as exc:
                rollback(conn)
                raise self._file.error("cannot write", exc,
                                       ROLLED_BACK) from exc
            except BaseException:
                rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    rollback(conn)
                raise self._file.error("cannot commit", exc,
                                       ROLLED_BACK) from exc

    def close(self) -> None:
        """Close the connection (a read-only ledger holds none)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
