"""Schema migrations (1 -> 2): all or nothing, even when the process dies
between two statements, and safe when several processes migrate at
once."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from ledger_v1 import write_v1_ledger

from pci_passthrough import exception
from pci_passthrough.ledger import PLUGGED, SCHEMA_VERSION, Ledger
from pci_passthrough.ledger import _schema as ledger_schema
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"

V1_ROWS = [
    ("0000:3b:02.0", INST, 0, "allocated", "net1",
     PortRequest(0, flavor="net1").to_json(), "ens1f0v0"),
    ("0000:3b:02.1", INST, 1, "claimed", "net1",
     PortRequest(1, flavor="net1", mac="fa:16:3e:00:00:01").to_json(),
     None),
    ("0000:5e:00.2", OTHER, 0, "claimed", None,
     PortRequest(0, spec={"vendor_id": "15b3"}).to_json(), "eth5"),
]


def make_v1(path, wal=False):
    write_v1_ledger(path, V1_ROWS, wal=wal)


def assert_still_v1(path):
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute(
            "SELECT name FROM sqlite_master ORDER BY name").fetchall() == [
            ("claims",), ("claims_instance",),
            ("sqlite_autoindex_claims_1",), ("sqlite_autoindex_claims_2",)]
        assert "CHECK (state IN ('claimed', 'allocated'))" in \
            conn.execute("SELECT sql FROM sqlite_master WHERE name = "
                         "'claims'").fetchone()[0]
        assert conn.execute("SELECT * FROM claims ORDER BY address"
                            ).fetchall() == V1_ROWS
    finally:
        conn.close()


def assert_migrated(path):
    with Ledger(path) as led:
        assert [(r.address, r.instance_uuid, r.port_index, r.state)
                for r in sorted(led.records(), key=lambda r: r.address)
                ] == [("0000:3b:02.0", INST, 0, PLUGGED),
                      ("0000:3b:02.1", INST, 1, "claimed"),
                      ("0000:5e:00.2", OTHER, 0, "claimed")]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == \
        SCHEMA_VERSION
    assert conn.execute("SELECT DISTINCT row_version FROM claims"
                        ).fetchall() == [(2,)]
    conn.close()


STEPS = ledger_schema.statements(ledger_schema.MIGRATIONS[1])


@pytest.mark.parametrize("gap", range(1, len(STEPS) + 1))
@pytest.mark.parametrize("wal", [False, True])
def test_a_fault_between_migration_statements_leaves_version_1(
        tmp_path, monkeypatch, gap, wal):
    # A real SQLite error after the first `gap` statements (a statement
    # on a table that does not exist), injected by changing the script.
    path = tmp_path / "v1.db"
    make_v1(path, wal)
    script = ";\n".join([*STEPS[:gap], "INSERT INTO fault VALUES (1)",
                         *STEPS[gap:]])
    monkeypatch.setitem(ledger_schema.MIGRATIONS, 1, script)
    with pytest.raises(exception.LedgerError,
                       match=r"migrating it from schema version 1 to "
                             rf"{SCHEMA_VERSION} "
                             r"failed \(no such table: fault\); nothing "
                             r"was changed") as err:
        Ledger(path)
    assert str(path) in str(err.value)
    assert_still_v1(path)
    monkeypatch.undo()
    assert_migrated(path)


def test_a_process_killed_mid_migration_leaves_version_1(tmp_path):
    # The migration runs in a child whose script holds, after its first
    # statements, a query that runs for minutes; the child is killed
    # with SIGKILL while it runs, inside the migration's transaction.
    path = tmp_path / "v1.db"
    make_v1(path)
    slow = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
            "FROM c WHERE x < 10000000000) SELECT count(*) FROM c")
    code = (
        "import sys\n"
        "from pci_passthrough import ledger\n"
        "from pci_passthrough.ledger import _schema as ledger_schema\n"
        "steps = ledger_schema.statements(ledger_schema.MIGRATIONS[1])\n"
        f"ledger_schema.MIGRATIONS[1] = ';'.join([*steps[:3], {slow!r},"
        " *steps[3:]])\n"
        "print('migrating', flush=True)\n"
        "ledger.Ledger(sys.argv[1])\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "migrating\n"
        journal = tmp_path / "v1.db-journal"
        deadline = time.monotonic() + 30
        while not journal.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        # The rename and the new table are in the child's transaction.
        assert journal.exists()
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # A read-only open reads through the journal the child left (not
    # with immutable=1, which would ignore it), changing nothing.
    listing = {n: (tmp_path / n).read_bytes()
               for n in os.listdir(tmp_path)}
    assert "v1.db-journal" in listing
    with Ledger(path, readonly=True) as readonly:
        assert len(readonly.records()) == len(V1_ROWS)
    assert {n: (tmp_path / n).read_bytes()
            for n in os.listdir(tmp_path)} == listing
    assert_still_v1(path)
    assert_migrated(path)


def _open(path, barrier, errors):
    try:
        barrier.wait(timeout=30)
        Ledger(path).close()
    except Exception as exc:  # reported to the parent, which fails
        errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("wal", [False, True])
def test_processes_migrating_at_once_all_succeed(tmp_path, wal):
    ctx = multiprocessing.get_context("fork")
    for trial in range(10):
        path = str(tmp_path / f"v1-{trial}.db")
        make_v1(path, wal)
        barrier, errors = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(path, barrier, errors))
                 for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        assert failures == []
        assert [p.exitcode for p in procs] == [0] * 8
        assert_migrated(path)


def test_a_migrated_ledger_has_the_schema_of_a_new_one(tmp_path):
    make_v1(tmp_path / "v1.db")
    Ledger(tmp_path / "v1.db").close()
    Ledger(tmp_path / "new.db").close()

    def schema(path):
        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT type, name, tbl_name, sql FROM "
                                "sqlite_master ORDER BY name").fetchall()
        finally:
            conn.close()

    assert schema(tmp_path / "v1.db") == schema(tmp_path / "new.db")
    assert os.path.exists(tmp_path / "v1.db")
