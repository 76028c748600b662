"""Version 1 ledger files, as that schema wrote them, for the migration
tests."""

import sqlite3
from collections.abc import Sequence

V1_SCHEMA = """
CREATE TABLE claims (
    address       TEXT PRIMARY KEY,
    instance_uuid TEXT NOT NULL,
    port_index    INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('claimed', 'allocated')),
    flavor        TEXT,
    request       TEXT NOT NULL,
    netdev        TEXT,
    UNIQUE (instance_uuid, port_index)
);
CREATE INDEX claims_instance ON claims (instance_uuid);
"""


def write_v1_ledger(path, rows: Sequence[tuple], wal: bool = False) -> None:
    """A version 1 ledger at ``path`` holding ``rows`` (address, instance,
    port, state, flavor, request JSON, netdev)."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_SCHEMA)
    conn.executemany("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?)",
                     rows)
    conn.execute("PRAGMA application_id=0x50435054")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
