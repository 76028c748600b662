"""The claims ledger: every claim and free, in SQLite, before the call
returns.

WAL journal, one transaction per operation.  synchronous=NORMAL: a
committed transaction survives a crash of the process (the agent, the
CLI); after a power loss the last transactions before it may be lost,
never half of one.  A UNIQUE constraint on the device address makes it
impossible, even across processes, for two claims to hold one device.

A ledger that cannot be read, is corrupt, is not a ledger or has a schema
this code does not know is an error naming the file: it is never reset,
since a reset would hand allocated devices out again.
"""

import contextlib
import dataclasses
import os
import pathlib
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence

from pci_passthrough import exception
from pci_passthrough.states import PortState

CLAIMED = PortState.CLAIMED
PLUGGED = PortState.PLUGGED

# "PCPT" in ASCII: marks the file as a ledger of this library.
APPLICATION_ID = 0x50435054
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 5.0

# The state column holds a PortState value; it is checked when rows are
# read rather than by a CHECK constraint, so that a new state needs no
# table rebuild.  row_version is the schema version a row was written
# under.
_SCHEMA = """
CREATE TABLE claims (
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
CREATE INDEX claims_instance ON claims (instance_uuid);
"""

# Each step takes a ledger from version N to N + 1 inside the opening
# transaction.  Version 1 named the plugged state "allocated" and
# constrained the state column.
_MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE claims RENAME TO claims_v1;
DROP INDEX claims_instance;
""" + _SCHEMA.strip() + """;
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
        return _select(self._conn)

    def add(self, records: Sequence[LedgerRecord]) -> None:
        """Record claims; DeviceAlreadyClaimed when an address is held."""
        for rec in records:
            try:
                self._conn.execute(
                    f"INSERT INTO claims ({_COLUMNS}) VALUES "
                    f"(?, ?, ?, ?, ?, ?, ?)",
                    dataclasses.astuple(rec))
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
        gone = _select(self._conn, "WHERE instance_uuid = ?",
                       (instance_uuid,))
        self._conn.execute("DELETE FROM claims WHERE instance_uuid = ?",
                           (instance_uuid,))
        return gone

    def remove_addresses(self, addresses: Collection[str]
                         ) -> list[LedgerRecord]:
        gone = []
        for address in addresses:
            gone += _select(self._conn, "WHERE address = ?", (address,))
            self._conn.execute("DELETE FROM claims WHERE address = ?",
                               (address,))
        return gone


def _select(conn: sqlite3.Connection, where: str = "",
            args: Sequence[object] = ()) -> list[LedgerRecord]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM claims {where} "
        f"ORDER BY instance_uuid, port_index", tuple(args)).fetchall()
    return [LedgerRecord(*row) for row in rows]


class Ledger:
    """The SQLite ledger at ``path``.

    Thread safe: one connection, used under a lock.  Several processes may
    open the same file; writers are serialised by BEGIN IMMEDIATE.
    """

    def __init__(self, path: str | os.PathLike[str],
                 busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._conn = self._open()

    def _fail(self, reason: str) -> exception.LedgerError:
        return exception.LedgerError(path=self.path, reason=reason)

    def _open(self) -> sqlite3.Connection:
        path = pathlib.Path(self.path)
        if path.is_dir():
            raise self._fail("it is a directory; expected a SQLite file")
        existed = path.exists()
        if not existed:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._fail(f"cannot create its folder ({exc})") \
                    from exc
        try:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout,
                                   isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot open it ({exc})") from exc
        try:
            self._check_or_create(conn, existed)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._fail(
                f"not a readable SQLite database ({exc}); restore it from "
                f"a backup or move it away deliberately") from exc
        except exception.LedgerError:
            conn.close()
            raise
        return conn

    def _check_or_create(self, conn: sqlite3.Connection,
                         existed: bool) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master").fetchone()[0]
        if existed and (app_id or version or tables):
            if app_id != APPLICATION_ID:
                raise self._fail(
                    f"it is a SQLite database of something else "
                    f"(application_id {app_id:#x}); expected a claims "
                    f"ledger")
            if version > SCHEMA_VERSION or version not in (
                    SCHEMA_VERSION, *_MIGRATIONS):
                raise self._fail(
                    f"schema version {version}; this version of "
                    f"pci_passthrough reads versions 1 to "
                    f"{SCHEMA_VERSION}: run the newer pci_passthrough "
                    f"that wrote it")
            if version < SCHEMA_VERSION:
                self._migrate(conn)
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise self._fail(f"integrity check failed: {check}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            return
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older ledger to SCHEMA_VERSION in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated it meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version].strip().split(";"):
                    if statement.strip():
                        conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def records(self) -> list[LedgerRecord]:
        with self._lock:
            try:
                return _select(self._conn)
            except sqlite3.Error as exc:
                raise self._fail(str(exc)) from exc

    def data_version(self) -> int:
        """Changes whenever another connection, in this process or
        another, has committed; a reader's own commits leave it as is."""
        with self._lock:
            value: int = self._conn.execute(
                "PRAGMA data_version").fetchone()[0]
            return value

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK when the body raises."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._fail(f"cannot start a transaction ({exc})") \
                    from exc
            try:
                yield LedgerTransaction(self, self._conn)
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise self._fail(str(exc)) from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise self._fail(f"cannot commit ({exc})") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
