"""The SQLite claims ledger: durability, exclusivity, and refusing to
reset a file it cannot trust."""

import sqlite3
import subprocess
import sys

import pytest
from ledger_v1 import write_v1_ledger

from pci_passthrough import exception
from pci_passthrough.ledger import (
    CLAIMED,
    PLUGGED,
    SCHEMA_VERSION,
    LeaseStart,
    Ledger,
    LedgerRecord,
)
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"


def rec(address, instance=INST, port=0):
    return LedgerRecord(instance, port, address, CLAIMED, "net1",
                        PortRequest(port, flavor="net1").to_json(),
                        "ens1f0v0")


def test_records_survive_reopening(tmp_path):
    path = tmp_path / "sub" / "claims.db"
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([rec("0000:3b:02.0"), rec("0000:3b:02.1", port=1)])
    with Ledger(path) as again:
        assert [r.address for r in again.records()] == [
            "0000:3b:02.0", "0000:3b:02.1"]
        mode = sqlite3.connect(path).execute(
            "PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_set_state_and_remove(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.0"), rec("0000:3b:02.1", OTHER)])
            assert txn.set_state(INST, PLUGGED) == 1
        assert {r.address: r.state for r in ledger.records()} == {
            "0000:3b:02.0": PLUGGED, "0000:3b:02.1": CLAIMED}
        with ledger.transaction() as txn:
            gone = txn.remove_instance(INST)
            assert [r.address for r in gone] == ["0000:3b:02.0"]
            assert txn.remove_instance(INST) == []
            assert [r.address for r in txn.remove_instance(OTHER)] == [
                "0000:3b:02.1"]
        assert ledger.records() == []


def test_remove_port_keeps_the_other_ports_and_the_lease_until_the_last(
        tmp_path):
    started = LeaseStart(1_000_000.0)
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.0"), rec("0000:3b:02.1", port=1),
                     rec("0000:3b:02.2", OTHER)])
            txn.set_lease(INST, started)
            assert [r.address for r in txn.remove_port(INST, 1)] == [
                "0000:3b:02.1"]
            assert txn.remove_port(INST, 1) == []
            assert txn.leases() == {INST: started}
        assert [r.address for r in ledger.records()] == [
            "0000:3b:02.0", "0000:3b:02.2"]
        with ledger.transaction() as txn:
            txn.remove_port(INST, 0)
            assert txn.leases() == {}
        assert [r.instance_uuid for r in ledger.records()] == [OTHER]


def test_an_address_is_held_once_and_a_failed_add_keeps_nothing(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.0")])
        with pytest.raises(exception.DeviceAlreadyClaimed,
                           match=f"0000:3b:02.0 is already held by "
                                 f"instance {INST} port 0"), \
                ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.5", OTHER),
                     rec("0000:3b:02.0", OTHER, port=1)])
        assert [r.address for r in ledger.records()] == ["0000:3b:02.0"]


def test_an_exception_in_the_body_rolls_back(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        with pytest.raises(RuntimeError), ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.0")])
            raise RuntimeError("fault after the write")
        assert ledger.records() == []


def _junk(path):
    path.write_bytes(b"\x00junk" * 1000)


def _truncated(path):
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([rec("0000:3b:02.0")])
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[:600])


def _text(path):
    path.write_text("[pci_passthrough]\nsysfs_root = /sys\n")


def _foreign(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def _newer(path):
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _directory(path):
    path.mkdir()


@pytest.mark.parametrize("make,reason", [
    (_junk, "not a SQLite database"),
    (_truncated, "not a readable SQLite database|integrity check"),
    (_text, "not a SQLite database"),
    (_foreign, "a SQLite database of something else"),
    (_newer, f"schema version {SCHEMA_VERSION + 1}"),
    (_directory, "it is a directory"),
])
def test_untrusted_files_are_errors_naming_the_file_never_reset(
        tmp_path, make, reason):
    path = tmp_path / "claims.db"
    make(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(exception.LedgerError, match=reason) as err:
        Ledger(path)
    assert str(path) in str(err.value)
    if before is not None:
        assert path.read_bytes() == before


def test_data_version_sees_other_connections_commits_only(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as mine, Ledger(path) as theirs:
        start = mine.data_version()
        with mine.transaction() as txn:
            txn.add([rec("0000:3b:02.0")])
        assert mine.data_version() == start
        theirs_start = theirs.data_version()
        assert [r.address for r in theirs.records()] == ["0000:3b:02.0"]
        assert theirs.data_version() == theirs_start
        with theirs.transaction() as txn:
            txn.remove_instance(INST)
        assert mine.data_version() != start
        assert mine.records() == []


def test_another_process_sees_commits(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        with ledger.transaction() as txn:
            txn.add([rec("0000:3b:02.0")])
        code = (
            "import sys; from pci_passthrough.ledger import Ledger\n"
            "l = Ledger(sys.argv[1])\n"
            "print(len(l.records()))\n"
            "with l.transaction() as t: t.remove_instance(sys.argv[2])\n")
        out = subprocess.run([sys.executable, "-c", code, str(path), INST],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "1"
        assert ledger.records() == []


def test_a_version_1_ledger_is_migrated_keeping_every_claim(tmp_path):
    path = tmp_path / "v1.db"
    write_v1_ledger(path, [
        ("0000:3b:02.0", INST, 0, "allocated", "net1",
         PortRequest(0, flavor="net1").to_json(), "ens1f0v0"),
        ("0000:3b:02.1", OTHER, 0, "claimed", None,
         PortRequest(0, spec={"vendor_id": "8086"}).to_json(), None)])
    with Ledger(path) as ledger:
        assert [(r.address, r.instance_uuid, r.state, r.netdev)
                for r in ledger.records()] == [
            ("0000:3b:02.0", INST, PLUGGED, "ens1f0v0"),
            ("0000:3b:02.1", OTHER, CLAIMED, None)]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == \
        SCHEMA_VERSION == 4
    assert raw.execute("SELECT DISTINCT row_version FROM claims"
                       ).fetchall() == [(2,)]
    raw.close()
