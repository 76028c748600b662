"""The claims ledger: every claim and free, in SQLite, before the call
returns.

WAL journal, one transaction per operation.  synchronous=NORMAL: a
committed transaction survives a crash of the process (the agent, the
CLI); after a power loss the last transactions before it may be lost,
never half of one.  A UNIQUE constraint on the device address makes it
impossible, even across processes, for two claims to hold one device.

A new ledger is built, schema and all, in a private file of the same
folder and published under its name with a hard link, which fails when
the name exists: several processes creating it at once all end up with
the one that won, and no process ever sees an empty or half-made ledger
under the real name.  So a ledger that is empty (a truncated file: its
claims are lost), is not SQLite, belongs to something else, has a schema
this code does not know, or holds a row that does not validate is an
error naming the file (and the row) and saying what to do.  It is never
reset, since a reset would hand allocated devices out again.

Read-only ledgers (``readonly=True``, for commands that only show) never
create or change the file, its folder or SQLite's -wal and -shm files
where SQLite allows it: see ``_ReadOnlySnapshot``.
"""

import contextlib
import dataclasses
import errno
import fcntl
import itertools
import os
import pathlib
import secrets
import sqlite3
import stat
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.ledger_rows import InvalidRow, check_row
from pci_passthrough.states import PortState

CLAIMED = PortState.CLAIMED
PLUGGED = PortState.PLUGGED

# "PCPT" in ASCII: marks the file as a ledger of this library.
APPLICATION_ID = 0x50435054
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 5.0
SQLITE_MAGIC = b"SQLite format 3\x00"

# The state column holds a PortState value; it is checked when rows are
# read rather than by a CHECK constraint, so that a new state needs no
# table rebuild.  row_version is the schema version a row was written
# under.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    address       TEXT PRIMARY KEY,
    instance_uuid TEXT NOT NULL,
    port_index    INTEGER NOT NULL,
    state         TEXT NOT NULL,
    flavor        TEXT,
    request       TEXT NOT NULL,
    netdev        TEXT,
    row_version   INTEGER NOT NULL DEFAULT 2,
    UNIQUE (instance_uuid, port_index)
);
CREATE INDEX IF NOT EXISTS claims_instance ON claims (instance_uuid);
"""

# Each step takes a ledger from version N to N + 1 inside one
# transaction.  Version 1 named the plugged state "allocated" and
# constrained the state column.
_MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE claims RENAME TO claims_v1;
DROP INDEX claims_instance;
""" + _SCHEMA.strip() + """
INSERT INTO claims (address, instance_uuid, port_index, state, flavor,
                    request, netdev, row_version)
    SELECT address, instance_uuid, port_index,
           CASE state WHEN 'allocated' THEN 'plugged' ELSE state END,
           flavor, request, netdev, 2 FROM claims_v1;
DROP TABLE claims_v1;
""",
}
_COLUMNS = ("instance_uuid, port_index, address, state, flavor, request, "
            "netdev")
_SELECT = (f"SELECT {_COLUMNS}, row_version FROM claims {{where}} "
           f"ORDER BY instance_uuid, port_index")

_RESTORE = ("restore it from a backup; or, after checking libvirt's "
            "networks (virsh net-list --all) against the instances it "
            "held, move it away deliberately so that an empty ledger is "
            "created")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _normal(sql: str) -> str:
    # SQLite keeps a CREATE statement as written, without IF NOT EXISTS.
    return " ".join(sql.replace(" IF NOT EXISTS", "").split())


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


class LedgerTransaction:
    """Reads and writes inside one ledger transaction."""

    def __init__(self, ledger: "Ledger", conn: sqlite3.Connection) -> None:
        self._ledger = ledger
        self._conn = conn

    def records(self) -> list[LedgerRecord]:
        return self._ledger._load(self._conn)

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
                raise self._ledger._fail(
                    f"refusing to write a claim of instance "
                    f"{rec.instance_uuid!r} port {rec.port_index!r}: "
                    f"{exc}") from None
            try:
                self._conn.execute(
                    f"INSERT INTO claims ({_COLUMNS}, row_version) VALUES "
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
        state = PortState(state)
        cur = self._conn.execute(
            "UPDATE claims SET state = ? WHERE instance_uuid = ?",
            (state, instance_uuid))
        return cur.rowcount

    def remove_instance(self, instance_uuid: str) -> list[LedgerRecord]:
        gone = self._ledger._load(self._conn, "WHERE instance_uuid = ?",
                                  (instance_uuid,))
        self._conn.execute("DELETE FROM claims WHERE instance_uuid = ?",
                           (instance_uuid,))
        return gone


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
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # The rows last validated, with the data_version read before them;
        # cleared by this connection's own transactions, which leave
        # data_version as it is.
        self._cache: tuple[int, list[LedgerRecord]] | None = None
        self._reads = itertools.count(1)
        # Each row of the last full load, as read, and its record.
        self._validated: dict[tuple[Any, ...], LedgerRecord] = {}
        # A read-only ledger's first records() answers with what the open
        # read.
        self._first: list[LedgerRecord] | None = None
        if readonly:
            # Refuse an unusable file now, as a writable open would.
            self._first = self._read_snapshot()
        else:
            self._conn = self._open()

    def _fail(self, reason: str) -> exception.LedgerError:
        return exception.LedgerError(path=self.path, reason=reason)

    def _uri(self, path: str, mode: str, *extra: str) -> str:
        return "?".join((pathlib.Path(os.path.abspath(path)).as_uri(),
                         "&".join((f"mode={mode}", *extra))))

    def _connect(self, uri: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(uri, uri=True,
                                   timeout=self._busy_timeout,
                                   isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open it ({exc})") from exc

    # -- opening -----------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._create()
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                raise self._fail(
                    "it is a dangling symbolic link or vanished while it "
                    "was created") from None
        except OSError as exc:
            raise self._fail(f"cannot look at it ({exc})") from exc
        self._check_file(st)
        conn = self._connect(self._uri(self.path, "rw"))
        try:
            version = self._check_header(conn)
            if version < SCHEMA_VERSION:
                self._migrate(conn)
            self._check_schema(conn)
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._cache = (data_version, self._load(conn))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unreadable(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _unreadable(self, exc: sqlite3.Error) -> exception.LedgerError:
        return self._fail(f"not a readable SQLite database ({exc}); "
                          f"{_RESTORE}")

    def _check_file(self, st: os.stat_result) -> None:
        """What can be told without SQLite: a folder, an empty file, a file
        that is not SQLite at all."""
        if stat.S_ISDIR(st.st_mode):
            raise self._fail("it is a directory; expected a SQLite file")
        if not stat.S_ISREG(st.st_mode):
            raise self._fail("it is not a regular file; expected a SQLite "
                             "file")
        if st.st_size == 0:
            raise self._fail(f"it is empty (0 bytes): a ledger is never "
                             f"empty, so it was truncated and its claims "
                             f"are lost; {_RESTORE}")
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise self._fail(f"cannot read it ({exc})") from exc
        if head != SQLITE_MAGIC:
            raise self._fail(f"not a SQLite database (it starts with "
                             f"{head[:8]!r}); check option "
                             f"[pci_passthrough] state_path, or {_RESTORE}")

    def _check_header(self, conn: sqlite3.Connection) -> int:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise self._fail(
                f"it is a SQLite database of something else "
                f"(application_id {app_id:#x}), not a claims ledger; check "
                f"option [pci_passthrough] state_path")
        if version > SCHEMA_VERSION:
            raise self._fail(
                f"schema version {version} is newer than this version of "
                f"pci_passthrough reads (1 to {SCHEMA_VERSION}): run the "
                f"newer pci_passthrough that wrote it")
        if version not in (SCHEMA_VERSION, *_MIGRATIONS):
            raise self._fail(f"schema version {version} is unknown; "
                             f"{_RESTORE}")
        return version

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        found = sorted(
            (name, _normal(sql or "")) for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE name NOT LIKE 'sqlite_%'"))
        expected = sorted(
            (name, _normal(sql)) for name, sql in zip(
                ("claims", "claims_instance"), _statements(_SCHEMA),
                strict=True))
        if found != expected:
            raise self._fail(
                f"its tables are not those of a schema version "
                f"{SCHEMA_VERSION} ledger (found "
                f"{', '.join(n for n, _ in found) or 'none'}); {_RESTORE}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise self._fail(f"integrity check failed: {check}; {_RESTORE}")

    def _create(self) -> None:
        """Build a new ledger in a private file and publish it under the
        ledger's name, unless another process published one first."""
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise self._fail(f"cannot create its folder ({exc})") from exc
        tmp = os.path.join(folder, f".{os.path.basename(self.path)}."
                                   f"{secrets.token_hex(8)}.new")
        try:
            # 0o644 less the umask, as SQLite would create it.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            raise self._fail(f"cannot create a file in its folder "
                             f"({exc})") from exc
        try:
            conn = self._connect(self._uri(tmp, "rw"))
            try:
                create_schema(conn)
            except sqlite3.Error as exc:
                raise self._fail(f"cannot create it ({exc})") from exc
            finally:
                conn.close()
            _fsync(tmp)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return
            except OSError as exc:
                raise self._fail(
                    f"cannot publish the new ledger {tmp} under its name "
                    f"({exc}); creating it safely needs a file system with "
                    f"hard links") from exc
            _fsync(folder)
        finally:
            for name in (tmp, tmp + "-wal", tmp + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a ledger in rollback-journal mode (a version 1 file) to
        WAL.  That needs the file to itself, and SQLite answers "locked"
        at once rather than waiting while others read: retry until the
        busy timeout."""
        deadline = time.monotonic() + self._busy_timeout
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
                raise self._fail(f"cannot switch it to WAL journal mode "
                                 f"({problem}); another process holds it")
            time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older ledger to SCHEMA_VERSION in one transaction."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._fail(f"cannot start migrating it ({exc})") from exc
        # Another process may have migrated it meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        try:
            migrate_schema(conn, version)
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._fail(
                    f"migrating it from schema version {version} to "
                    f"{SCHEMA_VERSION} failed ({exc}); nothing was "
                    f"changed: it is still a version {version} ledger"
                ) from exc
            raise

    # -- reading -----------------------------------------------------------

    def _load(self, conn: sqlite3.Connection, where: str = "",
              args: Sequence[object] = ()) -> list[LedgerRecord]:
        """Rows, each validated; a row that is not is an error naming it.

        A row exactly as it was at the last full load (every column
        equal) was validated then: its record is reused, so a reload
        after another process's commit checks only the rows it changed.
        """
        known = self._validated
        seen: dict[tuple[Any, ...], LedgerRecord] = {}
        records = []
        for row in conn.execute(_SELECT.format(where=where), tuple(args)):
            rec = known.get(row)
            if rec is None:
                try:
                    check_row(*row)
                except InvalidRow as exc:
                    raise self._fail(
                        f"the row of address {row[2]!r}, instance "
                        f"{row[0]!r}, port {row[1]!r} is invalid: {exc}; "
                        f"{_RESTORE}") from None
                rec = LedgerRecord(*row[:7])
            seen[row] = rec
            records.append(rec)
        if not where:
            self._validated = seen
        return records

    def records(self) -> list[LedgerRecord]:
        with self._lock:
            if self._conn is None:
                first, self._first = self._first, None
                return first if first is not None else \
                    self._read_snapshot()
            try:
                version = self._conn.execute(
                    "PRAGMA data_version").fetchone()[0]
                if self._cache is not None and self._cache[0] == version:
                    return list(self._cache[1])
                records = self._load(self._conn)
                self._cache = (version, records)
                return list(records)
            except sqlite3.Error as exc:
                raise self._fail(str(exc)) from exc

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

    def _read_snapshot(self) -> list[LedgerRecord]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._fail(f"cannot look at it ({exc})") from exc
        self._check_file(st)
        return _ReadOnlySnapshot(self).read()

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK when the body raises."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise self._fail("it is open read-only; this command or "
                                 "call cannot change claims")
            self._cache = None
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._fail(f"cannot start a transaction ({exc})") \
                    from exc
            try:
                yield LedgerTransaction(self, conn)
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise self._fail(str(exc)) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._fail(f"cannot commit ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_schema(conn: sqlite3.Connection) -> None:
    """The current schema in one transaction; a no-op on a ledger that
    has it."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(_SCHEMA):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrate_schema(conn: sqlite3.Connection, version: int) -> None:
    """Run the migrations from ``version`` to SCHEMA_VERSION, inside the
    caller's transaction."""
    while version < SCHEMA_VERSION:
        for statement in _statements(_MIGRATIONS[version]):
            conn.execute(statement)
        version += 1
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# SQLite's unix locks: a reader holds a read lock on these bytes of the
# database file, and a connection needs a write lock on them (EXCLUSIVE)
# to checkpoint its WAL into the file and delete -wal and -shm on close.
_SHARED_FIRST = 0x40000000 + 2
_SHARED_SIZE = 510
_FLOCK = "hhqqi"


class _ReadOnlySnapshot:
    """One read of a ledger that creates and changes nothing.

    Measured with SQLite 3.40 (tests/unit/test_ledger_readonly.py): a WAL
    database opened with mode=ro creates whichever of -wal and -shm is
    missing, and leaves them behind; in a folder it cannot write, it
    fails ("attempt to write a readonly database").  When both exist it
    uses them and creates nothing, even in a folder it cannot write.

    Both are missing only when no connection has the ledger open (the
    last one to close checkpoints the WAL into the file and deletes
    them).  Then the file alone holds every claim, and it is read with
    immutable=1, which makes SQLite open nothing else.  For the duration,
    a read lock on SQLite's SHARED bytes (an open file description lock,
    which closing other descriptors of this process does not drop) keeps
    any connection from checkpointing into the file or deleting the side
    files.  A connection that started meanwhile leaves -shm behind; then
    the read is done again through SQLite's shared memory.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        # SQLite names -wal, -shm and -journal after the file a symbolic
        # link points to.
        self._path = os.path.realpath(ledger.path)

    def _side_files(self) -> tuple[bool, bool, bool]:
        # A -journal is a rollback journal (version 1 files): left by a
        # writer that crashed, it may hold pages to roll back, which an
        # immutable read would not see; SQLite's own read does.
        return (os.path.exists(self._path + "-wal"),
                os.path.exists(self._path + "-shm"),
                os.path.exists(self._path + "-journal"))

    def read(self) -> list[LedgerRecord]:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._ledger._fail(f"cannot read it ({exc})") from exc
        try:
            self._lock_shared(fd)
            if not any(self._side_files()):
                records = self._read("immutable=1")
                if not any(self._side_files()):
                    return records
            return self._read()
        finally:
            os.close(fd)

    def _lock_shared(self, fd: int) -> None:
        flock = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET,
                            _SHARED_FIRST, _SHARED_SIZE, 0)
        flock += bytes(-len(flock) % 8)
        deadline = time.monotonic() + self._ledger._busy_timeout
        while True:
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or \
                        time.monotonic() > deadline:
                    raise self._ledger._fail(
                        f"cannot lock it for reading ({exc})") from exc
            time.sleep(0.005)

    def _read(self, *extra: str) -> list[LedgerRecord]:
        ledger = self._ledger
        conn = ledger._connect(ledger._uri(self._path, "ro", *extra))
        try:
            version = ledger._check_header(conn)
            if version < SCHEMA_VERSION:
                conn = _migrated_copy(conn)
            ledger._check_schema(conn)
            return ledger._load(conn)
        except sqlite3.OperationalError as exc:
            folder = os.path.dirname(os.path.abspath(self._path))
            wal, shm, _ = self._side_files()
            if (wal and shm) or os.access(folder, os.W_OK):
                raise ledger._unreadable(exc) from exc
            # A -wal or -shm is missing: SQLite must create it to read
            # the ledger, in a folder this user cannot write.
            raise ledger._fail(
                f"cannot read it without creating SQLite's -shm file "
                f"next to it, and this user cannot write that folder "
                f"({exc}); run this as the user that runs the agent"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise ledger._unreadable(exc) from exc
        finally:
            conn.close()


def _migrated_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of an older ledger, migrated: what a writable
    open would make of it, without writing the file."""
    data = bytearray(conn.serialize())
    conn.close()
    # Bytes 18 and 19 of the header say WAL (2), which a memory database
    # cannot use; 1 is the rollback journal.
    data[18:20] = b"\x01\x01"
    mem = sqlite3.connect(":memory:", isolation_level=None)
    mem.deserialize(bytes(data))
    mem.execute("BEGIN")
    migrate_schema(mem, mem.execute("PRAGMA user_version").fetchone()[0])
    mem.execute("COMMIT")
    return mem
