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
where SQLite allows it: see pci_passthrough.ledger.readonly.
"""

import contextlib
import dataclasses
import itertools
import os
import pathlib
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from pci_passthrough import exception
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.ledger import _schema as ledger_schema
from pci_passthrough.ledger import readonly as ledger_readonly
from pci_passthrough.ledger._rows import (
    InvalidRow,
    check_address,
    check_lease,
    check_row,
)
from pci_passthrough.ledger._schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
)
from pci_passthrough.model.states import PortState

CLAIMED = PortState.CLAIMED
PLUGGED = PortState.PLUGGED

T = TypeVar("T")
BUSY_TIMEOUT_S = 5.0
SQLITE_MAGIC = b"SQLite format 3\x00"

_COLUMNS = ("instance_uuid, port_index, address, state, flavor, request, "
            "netdev")
_SELECT = (f"SELECT {_COLUMNS}, row_version FROM claims {{where}} "
           f"ORDER BY instance_uuid, port_index")

_RESTORE = ("restore it from a backup; or, after checking libvirt's "
            "networks (virsh net-list --all) against the instances it "
            "held, move it away deliberately so that an empty ledger is "
            "created")


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
        """Delete the instance's claims and its migration lease."""
        gone = self._ledger._load(self._conn, "WHERE instance_uuid = ?",
                                  (instance_uuid,))
        self._conn.execute("DELETE FROM claims WHERE instance_uuid = ?",
                           (instance_uuid,))
        self.forget_lease(instance_uuid)
        return gone

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
        source = f"journal of device {address} in {self._ledger.path}"
        try:
            check_address(address)
        except InvalidRow as exc:
            raise self._ledger._fail(f"refusing to write a {source}: "
                                     f"{exc}") from None
        netdev_journal.from_json(text, source)
        self._conn.execute(
            "INSERT OR REPLACE INTO vf_journal (address, state, "
            "row_version) VALUES (?, ?, ?)", (address, text, SCHEMA_VERSION))

    def journals(self) -> dict[str, NetdevState]:
        return self._ledger._journals(self._conn)

    def forget_journal(self, address: str) -> bool:
        cur = self._conn.execute("DELETE FROM vf_journal WHERE address = ?",
                                 (address,))
        return cur.rowcount > 0

    # -- migration leases -----------------------------------------------------

    def set_lease(self, instance_uuid: str, started: float) -> bool:
        """Start the instance's lease unless one runs already (a repeated
        call does not extend it); True when this call started it."""
        try:
            check_lease(instance_uuid, started, SCHEMA_VERSION)
        except InvalidRow as exc:
            raise self._ledger._fail(f"refusing to write a lease: {exc}") \
                from None
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO leases (instance_uuid, started, "
            "row_version) VALUES (?, ?, ?)",
            (instance_uuid, float(started), SCHEMA_VERSION))
        return cur.rowcount > 0

    def leases(self) -> dict[str, float]:
        return self._ledger._leases(self._conn)

    def forget_lease(self, instance_uuid: str) -> bool:
        cur = self._conn.execute(
            "DELETE FROM leases WHERE instance_uuid = ?", (instance_uuid,))
        return cur.rowcount > 0


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
        if version not in (SCHEMA_VERSION, *MIGRATIONS):
            raise self._fail(f"schema version {version} is unknown; "
                             f"{_RESTORE}")
        return version

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        found = ledger_schema.unexpected_objects(conn)
        if found is not None:
            raise self._fail(
                f"its tables are not those of a schema version "
                f"{SCHEMA_VERSION} ledger (found "
                f"{', '.join(found) or 'none'}); {_RESTORE}")
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
                ledger_schema.create_schema(conn)
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
            ledger_schema.migrate_schema(conn, version)
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

    def _journals(self, conn: sqlite3.Connection
                  ) -> dict[str, NetdevState]:
        """Every VF journal row, each validated."""
        found = {}
        for address, text, row_version in conn.execute(
                "SELECT address, state, row_version FROM vf_journal "
                "ORDER BY address"):
            try:
                check_address(address)
                if row_version != SCHEMA_VERSION:
                    raise InvalidRow(f"row version {row_version!r} is not "
                                     f"{SCHEMA_VERSION}")
                found[address] = netdev_journal.from_json(
                    text, f"journal of device {address} in {self.path}")
            except (InvalidRow, exception.InvalidNetdevState) as exc:
                raise self._fail(
                    f"the VF journal row of address {address!r} is "
                    f"invalid: {exc}; {_RESTORE}") from None
        return found

    def _leases(self, conn: sqlite3.Connection) -> dict[str, float]:
        """Every migration lease row, each validated."""
        found = {}
        for instance, started, row_version in conn.execute(
                "SELECT instance_uuid, started, row_version FROM leases "
                "ORDER BY instance_uuid"):
            try:
                check_lease(instance, started, row_version)
            except InvalidRow as exc:
                raise self._fail(
                    f"the lease row of instance {instance!r} is invalid: "
                    f"{exc}; {_RESTORE}") from None
            found[instance] = float(started)
        return found

    def journals(self) -> dict[str, NetdevState]:
        """address -> the state journalled before its plug, for every VF
        not yet restored."""
        return self._read_extra(self._journals)

    def leases(self) -> dict[str, float]:
        """instance -> when its migration lease started (seconds since
        the epoch)."""
        return self._read_extra(self._leases)

    def _read_extra(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is not None:
                try:
                    return fn(self._conn)
                except sqlite3.Error as exc:
                    raise self._fail(str(exc)) from exc
            empty: Any = {}
            result: T = self._read_snapshot(fn, empty)
            return result

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

    def _read_snapshot(
            self, fn: Callable[[sqlite3.Connection], Any] | None = None,
            empty: Any = None) -> Any:
        """Read the ledger (its claims, or what ``fn`` reads) creating
        and changing nothing (see pci_passthrough.ledger.readonly); a
        missing file is no claims (or ``empty``)."""
        read = fn or self._load
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [] if fn is None else empty
        except OSError as exc:
            raise self._fail(f"cannot look at it ({exc})") from exc
        self._check_file(st)
        path = os.path.realpath(self.path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise self._fail(f"cannot read it ({exc})") from exc
        try:
            try:
                ledger_readonly.lock_shared(fd, self._busy_timeout)
            except OSError as exc:
                raise self._fail(f"cannot lock it for reading ({exc})") \
                    from exc
            if not any(ledger_readonly.side_files(path)):
                records = self._read_only(path, read, "immutable=1")
                if not any(ledger_readonly.side_files(path)):
                    return records
            return self._read_only(path, read)
        finally:
            os.close(fd)

    def _read_only(self, path: str,
                   read: Callable[[sqlite3.Connection], Any],
                   *extra: str) -> Any:
        conn = self._connect(self._uri(path, "ro", *extra))
        try:
            version = self._check_header(conn)
            if version < SCHEMA_VERSION:
                conn = ledger_schema.migrated_copy(conn)
            self._check_schema(conn)
            return read(conn)
        except sqlite3.OperationalError as exc:
            folder = os.path.dirname(path)
            wal, shm, _ = ledger_readonly.side_files(path)
            if (wal and shm) or os.access(folder, os.W_OK):
                raise self._unreadable(exc) from exc
            # A -wal or -shm is missing: SQLite must create it to read
            # the ledger, in a folder this user cannot write.
            raise self._fail(
                f"cannot read it without creating SQLite's -shm file "
                f"next to it, and this user cannot write that folder "
                f"({exc}); run this as the user that runs the agent"
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        finally:
            conn.close()

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


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
