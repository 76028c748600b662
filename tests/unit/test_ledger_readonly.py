"""Read-only ledgers: what SQLite itself does with a WAL database opened
read-only, and that Ledger(readonly=True) creates and changes nothing."""

import os
import sqlite3
import subprocess
import sys

import ledger_locked
import pytest
from ledger_locked import as_nobody, lock
from ledger_v1 import write_v1_ledger

from pci_passthrough import exception
from pci_passthrough.ledger import CLAIMED, Ledger, LedgerRecord
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"


def rec(address, port=0):
    return LedgerRecord(INST, port, address, CLAIMED, "net1",
                        PortRequest(port, flavor="net1").to_json(),
                        "ens1f0v0")


def make_ledger(path, count=2):
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([rec(f"0000:3b:02.{i}", i) for i in range(count)])


def state(folder):
    """Every file of the folder with its bytes and mtime."""
    out = {}
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        st = os.stat(full)
        with open(full, "rb") as f:
            out[name] = (st.st_mtime_ns, st.st_size, f.read())
    return out, os.stat(folder).st_mtime_ns


def raw_ro_read(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM claims").fetchone()[0]
    finally:
        conn.close()


# -- what SQLite does (the facts the read-only mode is built on) ----------

def test_sqlite_mode_ro_creates_missing_side_files_and_leaves_them(
        tmp_path):
    make_ledger(tmp_path / "l.db")
    assert os.listdir(tmp_path) == ["l.db"]
    assert raw_ro_read(tmp_path / "l.db") == 2
    assert sorted(os.listdir(tmp_path)) == ["l.db", "l.db-shm", "l.db-wal"]


@pytest.mark.parametrize("keep", ["l.db-wal", "l.db-shm"])
def test_sqlite_mode_ro_creates_the_one_side_file_missing(tmp_path, keep):
    make_ledger(tmp_path / "l.db")
    raw_ro_read(tmp_path / "l.db")
    gone = ({"l.db-wal", "l.db-shm"} - {keep}).pop()
    os.unlink(tmp_path / gone)
    raw_ro_read(tmp_path / "l.db")
    assert gone in os.listdir(tmp_path)


def test_sqlite_mode_ro_with_both_side_files_creates_nothing(tmp_path):
    path = tmp_path / "l.db"
    make_ledger(path)
    with Ledger(path) as writer:
        writer.records()
        names = sorted(os.listdir(tmp_path))
        assert names == ["l.db", "l.db-shm", "l.db-wal"]
        assert raw_ro_read(path) == 2
        assert sorted(os.listdir(tmp_path)) == names


locked_folder = pytest.fixture(ledger_locked.locked_folder)


def _ro_fails_readonly(path):
    try:
        raw_ro_read(path)
    except sqlite3.OperationalError as exc:
        return 0 if "readonly" in str(exc) else 3
    return 2


def test_sqlite_mode_ro_in_a_locked_folder_without_side_files_fails(
        locked_folder):
    path = os.path.join(locked_folder, "l.db")
    make_ledger(path)
    lock(locked_folder)
    assert as_nobody(_ro_fails_readonly, path) == 0


def _ro_reads(path, expected):
    return 0 if raw_ro_read(path) == expected else 2


def test_sqlite_mode_ro_in_a_locked_folder_with_side_files_works(
        locked_folder):
    path = os.path.join(locked_folder, "l.db")
    make_ledger(path)
    with Ledger(path) as writer:
        writer.records()
        lock(locked_folder)
        before = sorted(os.listdir(locked_folder))
        assert as_nobody(_ro_reads, path, 2) == 0
        assert sorted(os.listdir(locked_folder)) == before


# -- Ledger(readonly=True) --------------------------------------------------

def test_a_missing_ledger_is_no_claims_and_nothing_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "claims.db"
    with Ledger(path, readonly=True) as ledger:
        assert ledger.records() == []
    assert os.listdir(tmp_path) == []


def test_read_only_without_side_files_creates_and_changes_nothing(
        tmp_path):
    path = tmp_path / "claims.db"
    make_ledger(path)
    before = state(tmp_path)
    assert list(before[0]) == ["claims.db"]
    with Ledger(path, readonly=True) as ledger:
        assert [r.address for r in ledger.records()] == [
            "0000:3b:02.0", "0000:3b:02.1"]
        assert ledger.records() == ledger.records()
    assert state(tmp_path) == before


def test_read_only_with_a_writer_open_sees_its_commits(tmp_path):
    path = tmp_path / "claims.db"
    make_ledger(path)
    with Ledger(path) as writer:
        with writer.transaction() as txn:
            txn.add([rec("0000:3b:02.5", 5)])
        names = sorted(os.listdir(tmp_path))
        db_bytes = (tmp_path / "claims.db").read_bytes()
        wal_bytes = (tmp_path / "claims.db-wal").read_bytes()
        with Ledger(path, readonly=True) as ledger:
            assert len(ledger.records()) == 3
            with writer.transaction() as txn:
                txn.remove_instance(INST)
            wal_bytes = (tmp_path / "claims.db-wal").read_bytes()
            # Every records() reads afresh.
            assert ledger.records() == []
        assert sorted(os.listdir(tmp_path)) == names
        assert (tmp_path / "claims.db").read_bytes() == db_bytes
        assert (tmp_path / "claims.db-wal").read_bytes() == wal_bytes


def _ledger_reads(path, expected):
    with Ledger(path, readonly=True) as ledger:
        return 0 if len(ledger.records()) == expected else 2


def test_read_only_in_a_locked_folder_without_side_files(locked_folder):
    path = os.path.join(locked_folder, "claims.db")
    make_ledger(path)
    lock(locked_folder)
    before = state(locked_folder)
    assert as_nobody(_ledger_reads, path, 2) == 0
    assert state(locked_folder) == before


def test_read_only_in_a_locked_folder_with_a_writer_open(locked_folder):
    path = os.path.join(locked_folder, "claims.db")
    make_ledger(path)
    with Ledger(path) as writer:
        writer.records()
        lock(locked_folder)
        names = sorted(os.listdir(locked_folder))
        assert as_nobody(_ledger_reads, path, 2) == 0
        assert sorted(os.listdir(locked_folder)) == names


def test_a_missing_ledger_in_a_locked_folder_is_no_claims(locked_folder):
    lock(locked_folder)
    path = os.path.join(locked_folder, "sub", "claims.db")
    assert as_nobody(_ledger_reads, path, 0) == 0
    assert os.listdir(locked_folder) == []


def test_writing_a_read_only_ledger_is_an_error(tmp_path):
    path = tmp_path / "claims.db"
    make_ledger(path)
    before = state(tmp_path)
    for target in (path, tmp_path / "missing.db"):
        with Ledger(target, readonly=True) as ledger, \
                pytest.raises(exception.LedgerError,
                              match="read-only") as err, \
                ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.7", 7)])
        assert str(target) in str(err.value)
    assert state(tmp_path) == before


def test_a_writer_starting_during_a_read_is_seen_or_not_never_torn(
        tmp_path):
    # A writer process commits in a loop while read-only readers read:
    # every read is one whole committed state (an even number of rows,
    # since each transaction adds or removes two).  A reader's lock may
    # keep the writer's close from removing its -wal and -shm: they are
    # the writer's, and the ledger is whole.
    path = tmp_path / "claims.db"
    make_ledger(path, 0)
    code = (
        "import sys\n"
        "from pci_passthrough.ledger import Ledger, LedgerRecord\n"
        "from pci_passthrough.model.claims import PortRequest\n"
        "I = '4f1a2b3c-0000-4000-8000-00000000abcd'\n"
        "for n in range(60):\n"
        "    with Ledger(sys.argv[1]) as l, l.transaction() as t:\n"
        "        if n % 2:\n"
        "            t.remove_instance(I)\n"
        "        else:\n"
        "            t.add([LedgerRecord(I, p, f'0000:3b:02.{p}',\n"
        "                   'claimed', 'net1',\n"
        "                   PortRequest(p, flavor='net1').to_json(),\n"
        "                   None) for p in (0, 1)])\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)])
    counts = set()
    try:
        while writer.poll() is None:
            with Ledger(path, readonly=True) as ledger:
                counts.add(len(ledger.records()))
    finally:
        writer.wait()
    assert writer.returncode == 0
    assert counts <= {0, 2}
    with Ledger(path) as ledger:
        assert ledger.records() == []


def test_a_version_1_ledger_is_read_migrated_in_memory_file_unchanged(
        tmp_path):
    path = tmp_path / "v1.db"
    write_v1_ledger(path, [
        ("0000:3b:02.0", INST, 0, "allocated", "net1",
         PortRequest(0, flavor="net1").to_json(), "ens1f0v0")], wal=True)
    before = state(tmp_path)
    with Ledger(path, readonly=True) as ledger:
        assert [(r.address, r.state) for r in ledger.records()] == [
            ("0000:3b:02.0", "plugged")]
    assert state(tmp_path) == before


def _ledger_error(path, match):
    try:
        Ledger(path, readonly=True)
    except exception.LedgerError as exc:
        return 0 if match in str(exc) and path in str(exc) else 3
    return 2


def test_read_only_needing_a_shm_in_a_locked_folder_says_why(
        tmp_path, locked_folder):
    # A -wal holding commits without its -shm (copied while a writer had
    # the ledger open): SQLite must create -shm to read it.
    make_ledger(tmp_path / "claims.db")
    with Ledger(tmp_path / "claims.db") as writer:
        with writer.transaction() as txn:
            txn.add([rec("0000:3b:02.5", 5)])
        for name in ("claims.db", "claims.db-wal"):
            with open(tmp_path / name, "rb") as src, \
                    open(os.path.join(locked_folder, name), "wb") as dst:
                dst.write(src.read())
    path = os.path.join(locked_folder, "claims.db")
    os.chmod(path, 0o644)
    os.chmod(path + "-wal", 0o644)
    lock(locked_folder)
    before = state(locked_folder)
    assert as_nobody(_ledger_error, path,
                     "cannot read it without creating SQLite's -shm") == 0
    assert state(locked_folder) == before


def test_the_read_lock_keeps_a_closing_writer_from_checkpointing(tmp_path):
    # The mechanism behind reads without side files: while a reader holds
    # its lock on SQLite's SHARED bytes, the last connection to close
    # cannot take EXCLUSIVE, so it neither writes its WAL into the file
    # nor deletes -wal and -shm.
    from pci_passthrough.ledger.readonly import lock_shared
    path = tmp_path / "claims.db"
    make_ledger(path)
    assert os.listdir(tmp_path) == ["claims.db"]
    reader = Ledger(path, readonly=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        lock_shared(fd, 1.0)
        before = (tmp_path / "claims.db").read_bytes()
        with Ledger(path) as writer, writer.transaction() as txn:
            txn.add([rec("0000:3b:02.5", 5)])
        assert sorted(os.listdir(tmp_path)) == [
            "claims.db", "claims.db-shm", "claims.db-wal"]
        assert (tmp_path / "claims.db").read_bytes() == before
    finally:
        os.close(fd)
    Ledger(path).close()
    assert os.listdir(tmp_path) == ["claims.db"]
    # The first records() is what the open read; later ones read afresh.
    assert [len(reader.records()) for _ in range(2)] == [2, 3]


def test_read_only_through_a_symlink_sees_the_writers_commits(tmp_path):
    # SQLite keeps -wal and -shm next to the link's target: a reader that
    # looked next to the link would take the file alone for the ledger
    # and miss what is only in the -wal.
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "claims.db"
    make_ledger(target)
    link = tmp_path / "claims.db"
    link.symlink_to(target)
    with Ledger(link) as writer:
        with writer.transaction() as txn:
            txn.add([rec("0000:3b:02.5", 5)])
        assert (tmp_path / "real" / "claims.db-wal").exists()
        with Ledger(link, readonly=True) as ledger:
            assert len(ledger.records()) == 3
