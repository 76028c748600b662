"""A ledger's file as SQLite sees it: connecting, and the checks that
tell a ledger from an empty, foreign, unknown or damaged file.

Every refusal is a LedgerError naming the file and saying what to do;
none of them ever resets the file, since a reset would hand allocated
devices out again.  A storage fault (a full disk, a read-only file
system, a permission) is never taken for a damaged file: its error
names the fault, and its advice loses nothing.
"""

import dataclasses
import os
import pathlib
import sqlite3
import stat

import pci_passthrough.ledger._schema as ledger_schema
from pci_passthrough import exception
from pci_passthrough.ledger._schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
)
from pci_passthrough.ledger._storage import storage_error, unwritable_error

SQLITE_MAGIC = b"SQLite format 3\x00"

#: What to do about a ledger that cannot be used, ending each refusal.
RESTORE = ("restore it from a backup; or, after checking libvirt's "
           "networks (virsh net-list --all) against the instances it "
           "held, move it away deliberately so that an empty ledger is "
           "created")
#: What a storage error says the ledger still holds, by what failed.
UNCHANGED = "nothing was changed"
NOT_CREATED = "nothing was created"
ROLLED_BACK = ("the transaction was rolled back: the ledger holds what "
               "it held before")


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerFile:
    """The ledger file at ``path``, opened with ``busy_timeout``."""

    path: str
    busy_timeout: float

    def fail(self, reason: str) -> exception.LedgerError:
        """The error refusing this ledger for ``reason``."""
        return exception.LedgerError(path=self.path, reason=reason)

    def error(self, doing: str, exc: BaseException,
              kept: str = UNCHANGED) -> exception.LedgerError:
        """The error for ``exc``, raised while ``doing``, saying that
        ``kept`` holds: the storage fault behind it, or else a refusal
        quoting it."""
        return storage_error(self.path, doing, exc, kept) or \
            self.fail(f"{doing} ({exc}); {kept}")

    def storage_error(self, doing: str, exc: BaseException,
                      kept: str = UNCHANGED
                      ) -> exception.LedgerError | None:
        """The error naming the storage fault behind ``exc``, raised
        while ``doing``; None when it is not one."""
        return storage_error(self.path, doing, exc, kept)

    def check_writable(self) -> None:
        """Refuse, before SQLite quietly opens it read-only, a ledger
        this user cannot write or that is on a read-only file system."""
        if not os.access(self.path, os.R_OK | os.W_OK,
                         effective_ids=True):
            error = unwritable_error(self.path, "cannot open it for "
                                     "writing", UNCHANGED)
            if error is not None:
                raise error

    def unreadable(self, exc: sqlite3.Error) -> exception.LedgerError:
        """The error for a file SQLite cannot read as a database, unless
        a storage fault keeps it from reading it."""
        return storage_error(self.path, "cannot open it", exc,
                             UNCHANGED) or \
            self.fail(f"not a readable SQLite database ({exc}); "
                      f"{RESTORE}")

    def connect(self, path: str, mode: str,
                *extra: str) -> sqlite3.Connection:
        """A connection to ``path`` (this ledger's file, or a file being
        built for it) in URI ``mode`` with ``extra`` URI parameters;
        transactions are explicit (no implicit BEGIN)."""
        uri = "?".join((pathlib.Path(os.path.abspath(path)).as_uri(),
                        "&".join((f"mode={mode}", *extra))))
        try:
            return sqlite3.connect(uri, uri=True,
                                   timeout=self.busy_timeout,
                                   isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error("cannot open it", exc) from exc

    def check_file(self, st: os.stat_result) -> None:
        """What can be told without SQLite: a folder, an empty file, a file
        that is not SQLite at all."""
        if stat.S_ISDIR(st.st_mode):
            raise self.fail("it is a directory; expected a SQLite file")
        if not stat.S_ISREG(st.st_mode):
            raise self.fail("it is not a regular file; expected a SQLite "
                            "file")
        if st.st_size == 0:
            raise self.fail(f"it is empty (0 bytes): a ledger is never "
                            f"empty, so it was truncated and its claims "
                            f"are lost; {RESTORE}")
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise self.error("cannot read it", exc) from exc
        if head != SQLITE_MAGIC:
            raise self.fail(f"not a SQLite database (it starts with "
                            f"{head[:8]!r}); check option "
                            f"[pci_passthrough] state_path, or {RESTORE}")

    def check_header(self, conn: sqlite3.Connection) -> int:
        """The schema version of a claims ledger this code reads, or a
        refusal."""
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise self.fail(
                f"it is a SQLite database of something else "
                f"(application_id {app_id:#x}), not a claims ledger; check "
                f"option [pci_passthrough] state_path")
        if version > SCHEMA_VERSION:
            raise self.fail(
                f"schema version {version} is newer than this version of "
                f"pci_passthrough reads (1 to {SCHEMA_VERSION}): run the "
                f"newer pci_passthrough that wrote it")
        if version not in (SCHEMA_VERSION, *MIGRATIONS):
            raise self.fail(f"schema version {version} is unknown; "
                            f"{RESTORE}")
        return version

    def check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a ledger whose tables are not the current schema's, or
        that fails SQLite's integrity check."""
        found = ledger_schema.unexpected_objects(conn)
        if found is not None:
            raise self.fail(
                f"its tables are not those of a schema version "
                f"{SCHEMA_VERSION} ledger (found "
                f"{', '.join(found) or 'none'}); {RESTORE}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise self.fail(f"integrity check failed: {check}; {RESTORE}")


def rollback(conn: sqlite3.Connection) -> None:
    """End the connection's transaction, unless SQLite ended it already
    (as it may on a full disk): a ROLLBACK then fails, and would hide
    the error being handled."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")
