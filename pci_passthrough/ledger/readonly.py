"""Reading a ledger without creating or changing any file.

Measured with SQLite 3.40 (tests/unit/test_ledger_readonly.py): a WAL
database opened with mode=ro creates whichever of -wal and -shm is
missing, and leaves them behind; in a folder it cannot write, it fails
("attempt to write a readonly database").  When both exist it uses them
and creates nothing, even in a folder it cannot write.

Both are missing only when no connection has the ledger open (the last
one to close writes the WAL into the file and deletes them).  Then the
file alone holds every claim, and it can be read with immutable=1, which
makes SQLite open nothing else, provided no connection writes into the
file meanwhile: a read lock on SQLite's SHARED bytes, held for the whole
read, keeps any connection from taking EXCLUSIVE, which it needs to
write its WAL into the file and delete -wal and -shm when it closes.  A
connection that starts meanwhile creates -shm, which then stays: seeing
a side file after the read, the reader reads again through SQLite.

The lock is an open file description lock: unlike a POSIX record lock,
closing another descriptor of the file in this process (SQLite's own)
does not drop it, and it conflicts with SQLite's locks like another
process's would.
"""

import errno
import fcntl
import os
import sqlite3
import struct
import time
from collections.abc import Callable
from typing import TypeVar

import pci_passthrough.ledger._schema as ledger_schema
from pci_passthrough.ledger._file import LedgerFile
from pci_passthrough.ledger._schema import SCHEMA_VERSION

T = TypeVar("T")

# SQLite's unix locking: a reader holds a read lock on these bytes of the
# database file, EXCLUSIVE is a write lock on them.
SHARED_FIRST = 0x40000000 + 2
SHARED_SIZE = 510
_FLOCK = "hhqqi"  # struct flock: type, whence, start, len, pid


def side_files(path: str) -> tuple[bool, bool, bool]:
    """Whether -wal, -shm and -journal exist next to ``path`` (a real
    path: SQLite names them after the file a symbolic link points to).

    A -journal is a rollback journal (version 1 files): left by a writer
    that crashed, it may hold pages to roll back, which an immutable read
    would not see and SQLite's own read does.
    """
    return (os.path.exists(path + "-wal"), os.path.exists(path + "-shm"),
            os.path.exists(path + "-journal"))


def lock_shared(fd: int, timeout: float) -> None:
    """Take SQLite's SHARED lock on the open database ``fd``, as a reader
    would, waiting up to ``timeout`` seconds for an EXCLUSIVE holder.
    Closing ``fd`` releases it.

    :raises OSError: the lock could not be taken.
    """
    flock = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, SHARED_FIRST,
                        SHARED_SIZE, 0)
    flock += bytes(-len(flock) % 8)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or \
                    time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def read_snapshot(file: LedgerFile,
                  read: Callable[[sqlite3.Connection], T], missing: T) -> T:
    """What ``read`` reads of the ledger, creating and changing nothing;
    ``missing`` when there is no file."""
    try:
        st = os.stat(file.path)
    except FileNotFoundError:
        return missing
    except OSError as exc:
        raise file.error("cannot look at it", exc) from exc
    file.check_file(st)
    path = os.path.realpath(file.path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise file.error("cannot read it", exc) from exc
    try:
        try:
            lock_shared(fd, file.busy_timeout)
        except OSError as exc:
            raise file.fail(f"cannot lock it for reading ({exc})") from exc
        if not any(side_files(path)):
            found = _read_only(file, path, read, "immutable=1")
            if not any(side_files(path)):
                return found
        return _read_only(file, path, read)
    finally:
        os.close(fd)


def _read_only(file: LedgerFile, path: str,
               read: Callable[[sqlite3.Connection], T], *extra: str) -> T:
    conn = file.connect(path, "ro", *extra)
    try:
        version = file.check_header(conn)
        if version < SCHEMA_VERSION:
            conn = ledger_schema.migrated_copy(conn)
        file.check_schema(conn)
        return read(conn)
    except sqlite3.OperationalError as exc:
        wal, shm, _ = side_files(path)
        if not (wal and shm):
            # A -wal or -shm is missing: SQLite must create it to read
            # the ledger, in a folder this user cannot write, on a
            # read-only file system or on a full disk.
            error = file.storage_error(
                "cannot read it without creating SQLite's -shm file next "
                "to it", exc)
            if error is not None:
                raise error from exc
        raise file.unreadable(exc) from exc
    except sqlite3.DatabaseError as exc:
        raise file.unreadable(exc) from exc
    finally:
        conn.close()
