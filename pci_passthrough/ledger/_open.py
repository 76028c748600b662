"""Opening a ledger for writing: creating and publishing a new one,
migrating an older one, and switching it to WAL.

A new ledger is built, schema and all, in a private file of the same
folder, written into that file alone (checkpointed: the WAL is emptied)
and flushed to disk, then read back with the checks every open makes,
and only then published under its name with a hard link, which fails
when the name exists: several processes creating it at once all end up
with the one that won, and no process ever sees an empty, half-made or
damaged ledger under the real name.  Any fault on the way (a full disk
most likely) removes the private file and publishes nothing.
"""

import contextlib
import errno
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import pci_passthrough.ledger._schema as ledger_schema
from pci_passthrough import exception
from pci_passthrough.ledger._file import (
    NOT_CREATED,
    UNCHANGED,
    LedgerFile,
    rollback,
)
from pci_passthrough.ledger._schema import SCHEMA_VERSION

T = TypeVar("T")


def open_writable(file: LedgerFile,
                  first_read: Callable[[sqlite3.Connection], T]
                  ) -> tuple[sqlite3.Connection, T]:
    """A read-write connection to the ledger, created when missing and
    brought to SCHEMA_VERSION, and what ``first_read`` read through it
    (a database error in it refuses the ledger as unreadable)."""
    try:
        st = os.stat(file.path)
    except FileNotFoundError:
        _create(file)
        try:
            st = os.stat(file.path)
        except FileNotFoundError:
            raise file.fail(
                "it is a dangling symbolic link or vanished while it "
                "was created") from None
    except OSError as exc:
        raise file.error("cannot look at it", exc) from exc
    file.check_file(st)
    file.check_writable()
    conn = file.connect(file.path, "rw")
    try:
        version = file.check_header(conn)
        if version < SCHEMA_VERSION:
            _migrate(file, conn)
        file.check_schema(conn)
        _use_wal(file, conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        first = first_read(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise file.unreadable(exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn, first


def _create(file: LedgerFile) -> None:
    """Build a new ledger in a private file and publish it under the
    ledger's name, unless another process published one first."""
    folder = os.path.dirname(os.path.abspath(file.path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise file.error("cannot create its folder", exc,
                         NOT_CREATED) from exc
    tmp = os.path.join(folder, f".{os.path.basename(file.path)}."
                               f"{secrets.token_hex(8)}.new")
    try:
        # 0o644 less the umask, as SQLite would create it.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | os.O_CLOEXEC, 0o644))
    except OSError as exc:
        raise file.error("cannot create a file in its folder", exc,
                         NOT_CREATED) from exc
    try:
        _build(file, tmp)
        _verify(file, tmp)
        try:
            os.link(tmp, file.path)
        except FileExistsError:
            return
        except OSError as exc:
            # A file system without hard links answers EPERM.
            error = None if exc.errno == errno.EPERM else \
                file.storage_error("cannot publish the new ledger under "
                                   "its name", exc, NOT_CREATED)
            raise error or file.fail(
                f"cannot publish the new ledger {tmp} under its name "
                f"({exc}); creating it safely needs a file system with "
                f"hard links") from exc
        try:
            _fsync(folder)
        except OSError as exc:
            raise file.error(
                "cannot flush its folder to disk", exc,
                "the new ledger is in place, but its name may not "
                "survive a power loss") from exc
    finally:
        # What cannot be removed is left rather than hide the error.
        for name in (tmp, tmp + "-wal", tmp + "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(name)


def _build(file: LedgerFile, tmp: str) -> None:
    """The schema, written into ``tmp`` alone and flushed to disk."""
    conn = file.connect(tmp, "rw")
    try:
        ledger_schema.create_schema(conn)
        # The schema is in the WAL, which is not published: write it
        # into the file now, where a failure is seen, rather than at
        # close, where SQLite would keep it quiet.
        busy, _, _ = conn.execute(
            "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise file.fail("cannot create it (SQLite could not write "
                            "its WAL into the new file); nothing was "
                            "created")
    except sqlite3.Error as exc:
        raise file.error("cannot create it", exc, NOT_CREATED) from exc
    finally:
        conn.close()
    try:
        _fsync(tmp)
    except OSError as exc:
        raise file.error("cannot write it to disk", exc,
                         NOT_CREATED) from exc


def _verify(file: LedgerFile, tmp: str) -> None:
    """Read the new file alone back, with the checks every open makes."""
    new = LedgerFile(tmp, file.busy_timeout)
    try:
        new.check_file(os.stat(tmp))
        conn = new.connect(tmp, "ro", "immutable=1")
        try:
            if new.check_header(conn) != SCHEMA_VERSION:
                raise new.fail("its schema version is not "
                               f"{SCHEMA_VERSION}")
            new.check_schema(conn)
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise file.error("cannot read the new ledger back", exc,
                         NOT_CREATED) from exc
    except exception.LedgerError as exc:
        raise file.fail(f"the new ledger did not read back as one "
                        f"({exc}); {NOT_CREATED}") from exc


def _use_wal(file: LedgerFile, conn: sqlite3.Connection) -> None:
    """Switch a ledger in rollback-journal mode (a version 1 file) to
    WAL.  That needs the file to itself, and SQLite answers "locked"
    at once rather than waiting while others read: retry until the
    busy timeout."""
    deadline = time.monotonic() + file.busy_timeout
    while True:
        try:
            if conn.execute("PRAGMA journal_mode=WAL"
                            ).fetchone()[0] == "wal":
                return
            problem = "SQLite kept its journal mode"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            problem = str(exc)
        if time.monotonic() > deadline:
            raise file.fail(f"cannot switch it to WAL journal mode "
                            f"({problem}); another process holds it")
        time.sleep(0.01)


def _migrate(file: LedgerFile, conn: sqlite3.Connection) -> None:
    """Bring an older ledger to SCHEMA_VERSION in one transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise file.error("cannot start migrating it", exc) from exc
    # Another process may have migrated it meanwhile.
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    try:
        ledger_schema.migrate_schema(conn, version)
        conn.execute("COMMIT")
    except BaseException as exc:
        rollback(conn)
        if isinstance(exc, sqlite3.Error):
            kept = f"{UNCHANGED}: it is still a version {version} ledger"
            raise file.error(
                f"migrating it from schema version {version} to "
                f"{SCHEMA_VERSION} failed", exc, kept) from exc
        raise


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
