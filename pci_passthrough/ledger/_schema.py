"""The ledger's SQLite schema, its versions and the migrations between
them.

The schema version is the database's user_version; each row also
records the version it was written under (row_version).  A migration
takes a ledger from version N to N + 1 and runs, with every later one,
inside one transaction: a fault between two statements leaves the older
version whole.
"""

import sqlite3

# "PCPT" in ASCII: marks the file as a ledger of this library.
APPLICATION_ID = 0x50435054
SCHEMA_VERSION = 4

# The state column holds a PortState value; it is checked when rows are
# read rather than by a CHECK constraint, so that a new state needs no
# table rebuild.  row_version is the schema version a row was written
# under.
CLAIMS_SCHEMA = """
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
# Version 3: a VF netdev's state journalled before its plug, kept apart
# from the claim since it must outlive the claim until it is restored;
# and the start of each instance's live migration lease (incoming on the
# destination, outgoing on the source), in seconds since the epoch.
JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS vf_journal (
    address     TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 3
);
"""
V3_SCHEMA = JOURNAL_SCHEMA + """
CREATE TABLE IF NOT EXISTS leases (
    instance_uuid TEXT PRIMARY KEY,
    started       REAL NOT NULL,
    row_version   INTEGER NOT NULL DEFAULT 3
);
"""
# Version 4: a lease's start also read on the boot clock (seconds since
# boot, and the boot's id), which wall clock steps do not move; NULL in
# the rows of version 3, which have only the wall clock.
LEASES_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    instance_uuid TEXT PRIMARY KEY,
    started       REAL NOT NULL,
    boot          REAL,
    boot_id       TEXT,
    row_version   INTEGER NOT NULL DEFAULT 4
);
"""
SCHEMA = CLAIMS_SCHEMA + JOURNAL_SCHEMA + LEASES_SCHEMA
OBJECTS = ("claims", "claims_instance", "vf_journal", "leases")

# Version 1 named the plugged state "allocated" and constrained the state
# column; version 2 had no journal nor leases; version 3 timed leases on
# the wall clock alone (its rows keep their row_version, 3).
MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE claims RENAME TO claims_v1;
DROP INDEX claims_instance;
""" + CLAIMS_SCHEMA.strip() + """
INSERT INTO claims (address, instance_uuid, port_index, state, flavor,
                    request, netdev, row_version)
    SELECT address, instance_uuid, port_index,
           CASE state WHEN 'allocated' THEN 'plugged' ELSE state END,
           flavor, request, netdev, 2 FROM claims_v1;
DROP TABLE claims_v1;
""",
    2: V3_SCHEMA,
    3: """
ALTER TABLE leases RENAME TO leases_v3;
""" + LEASES_SCHEMA.strip() + """
INSERT INTO leases (instance_uuid, started, boot, boot_id, row_version)
    SELECT instance_uuid, started, NULL, NULL, row_version FROM leases_v3;
DROP TABLE leases_v3;
""",
}


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _normal(sql: str) -> str:
    # SQLite keeps a CREATE statement as written, without IF NOT EXISTS.
    return " ".join(sql.replace(" IF NOT EXISTS", "").split())


def unexpected_objects(conn: sqlite3.Connection) -> list[str] | None:
    """None when the tables and indexes are exactly the current schema's;
    else the names found."""
    found = sorted((name, _normal(sql or "")) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%'"))
    expected = sorted((name, _normal(sql)) for name, sql in zip(
        OBJECTS, statements(SCHEMA), strict=True))
    return None if found == expected else [name for name, _ in found]


def create_schema(conn: sqlite3.Connection) -> None:
    """The current schema in one transaction; a no-op on a ledger that
    has it."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements(SCHEMA):
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
        for statement in statements(MIGRATIONS[version]):
            conn.execute(statement)
        version += 1
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def migrated_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of an older ledger, migrated: what a writable
    open would make of it, without writing the file.  Closes ``conn``."""
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
