"""Creating a new ledger: processes and threads that create it at the same
moment all succeed and share one ledger; no one ever sees an empty or
half-made file under its name."""

import multiprocessing
import os
import queue
import sqlite3
import threading

import pytest

from pci_passthrough import exception
from pci_passthrough.ledger import (
    APPLICATION_ID,
    CLAIMED,
    SCHEMA_VERSION,
    Ledger,
    LedgerRecord,
)
from pci_passthrough.ledger import _schema as ledger_schema
from pci_passthrough.model.claims import PortRequest

PROCESSES = 12
TRIALS = int(os.environ.get("PCI_PASSTHROUGH_LEDGER_TRIALS", "15"))


def _instance(n):
    return f"4f1a2b3c-0000-4000-8000-{n:012x}"


def _record(n):
    return LedgerRecord(_instance(n), 0, f"0000:3b:{n // 8:02x}.{n % 8}",
                        CLAIMED, "net1",
                        PortRequest(0, flavor="net1").to_json(), None)


def _create_and_claim(path, barrier, n, errors):
    try:
        barrier.wait(timeout=30)
        with Ledger(path) as ledger, ledger.transaction() as txn:
            txn.add([_record(n)])
    except Exception as exc:  # reported to the parent, which fails
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_a_ledger_at_once_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for trial in range(TRIALS):
        path = str(tmp_path / f"t{trial}" / "claims.db")
        barrier = ctx.Barrier(PROCESSES)
        errors = ctx.Queue()
        procs = [ctx.Process(target=_create_and_claim,
                             args=(path, barrier, n, errors))
                 for n in range(PROCESSES)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        assert failures == [], f"trial {trial}: {failures}"
        assert [p.exitcode for p in procs] == [0] * PROCESSES
        with Ledger(path) as ledger:
            assert sorted(r.instance_uuid for r in ledger.records()) == [
                _instance(n) for n in range(PROCESSES)]
        # Only the ledger (and SQLite's side files) remain: no private
        # file of a creator is left behind.
        assert {n for n in os.listdir(os.path.dirname(path))
                if not n.startswith("claims.db")} == set()


def test_threads_creating_a_ledger_at_once_all_succeed(tmp_path):
    for trial in range(TRIALS):
        path = str(tmp_path / f"t{trial}" / "claims.db")
        barrier = threading.Barrier(16)
        errors = queue.SimpleQueue()
        threads = [threading.Thread(target=_create_and_claim,
                                    args=(path, barrier, n, errors))
                   for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors.empty(), errors.get()
        with Ledger(path) as ledger:
            assert len(ledger.records()) == 16


def _watch(path, stop, seen):
    # Look at the name as often as possible while creators race.
    while not stop.is_set():
        try:
            with open(path, "rb") as f:
                head = f.read(100)
        except FileNotFoundError:
            continue
        seen.add(len(head) == 100 and head.startswith(b"SQLite format 3"))


def test_the_name_never_shows_an_empty_or_schemaless_file(tmp_path):
    for trial in range(TRIALS):
        path = str(tmp_path / f"t{trial}" / "claims.db")
        os.makedirs(os.path.dirname(path))
        stop, seen = threading.Event(), set()
        watcher = threading.Thread(target=_watch, args=(path, stop, seen))
        watcher.start()
        try:
            Ledger(path).close()
        finally:
            stop.set()
            watcher.join()
        assert False not in seen
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == \
            APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == \
            SCHEMA_VERSION
        conn.close()


def test_a_new_ledger_has_the_permissions_sqlite_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        Ledger(tmp_path / "claims.db").close()
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "claims.db").st_mode & 0o777 == 0o644


def test_a_dangling_symlink_is_an_error_not_a_loop(tmp_path):
    os.symlink(tmp_path / "nowhere" / "x.db", tmp_path / "claims.db")
    with pytest.raises(exception.LedgerError, match="dangling"):
        Ledger(tmp_path / "claims.db")
    assert sorted(os.listdir(tmp_path)) == ["claims.db"]


def test_schema_creation_is_idempotent(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    ledger_schema.create_schema(conn)
    first = conn.execute("SELECT * FROM sqlite_master").fetchall()
    ledger_schema.create_schema(conn)
    assert conn.execute("SELECT * FROM sqlite_master").fetchall() == first
    conn.close()


def test_a_fault_while_creating_leaves_nothing(tmp_path, monkeypatch):
    # A fault inside schema creation (a full disk, an I/O error) cannot be
    # produced on demand here, so the schema step is made to fail: the
    # ledger's name must stay free and no private file may remain.
    def broken(conn):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE claims (x)")
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ledger_schema, "create_schema", broken)
    with pytest.raises(exception.LedgerError,
                       match=r"cannot create it \(disk I/O error\)"):
        Ledger(tmp_path / "claims.db")
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    Ledger(tmp_path / "claims.db").close()
    assert os.listdir(tmp_path) == ["claims.db"]
