"""Schema version 3: the VF journal and the migration leases, their
validation, and the migration 2 -> 3 (all or nothing, like 1 -> 2)."""

import contextlib
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.hygiene import NetdevState, VfState, to_json
from pci_passthrough.ledger import (
    CLAIMED,
    SCHEMA_VERSION,
    LeaseStart,
    Ledger,
    LedgerRecord,
)
from pci_passthrough.ledger import _schema as ledger_schema
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
ADDR = "0000:3b:02.0"
REQUEST = PortRequest(0, flavor="net1").to_json()
STATE = NetdevState(
    netdev="ens1f0v0", mac="02:00:00:00:03:01", mtu=1500, up=True,
    vf=VfState(pf="ens1f0", index=0, mac="02:00:00:00:03:01", vlan=0,
               qos=0, vlan_proto=0x8100, spoof_check=True, trust=False))
V2_ROW = (ADDR, INST, 0, "plugged", "net1", REQUEST, "ens1f0v0", 2)


def make_v2(path):
    conn = sqlite3.connect(path)
    conn.executescript(ledger_schema.CLAIMS_SCHEMA)
    conn.execute("INSERT INTO claims (address, instance_uuid, port_index, "
                 "state, flavor, request, netdev, row_version) VALUES "
                 "(?, ?, ?, ?, ?, ?, ?, ?)", V2_ROW)
    conn.execute(f"PRAGMA application_id={ledger_schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()


def names(path):
    conn = sqlite3.connect(path)
    try:
        return {n for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    finally:
        conn.close()


def test_a_version_2_ledger_is_migrated_keeping_its_claims(tmp_path):
    path = tmp_path / "v2.db"
    make_v2(path)
    with Ledger(path, readonly=True) as ro:
        # Read-only: migrated in memory, the file untouched.
        assert [r.address for r in ro.records()] == [ADDR]
        assert ro.journals() == {} and ro.leases() == {}
    assert names(path) == {"claims", "claims_instance"}
    with Ledger(path) as led:
        assert [(r.address, r.state) for r in led.records()] == [
            (ADDR, "plugged")]
        assert led.journals() == {} and led.leases() == {}
        with led.transaction() as txn:
            txn.journal(ADDR, to_json(STATE))
            assert txn.set_lease(INST, LeaseStart(1000.0))
        assert led.journals() == {ADDR: STATE}
    assert names(path) == set(ledger_schema.OBJECTS)
    Ledger(tmp_path / "new.db").close()

    def schema(p):
        conn = sqlite3.connect(p)
        try:
            return conn.execute("SELECT type, name, tbl_name, sql FROM "
                                "sqlite_master ORDER BY name").fetchall()
        finally:
            conn.close()

    assert schema(path) == schema(tmp_path / "new.db")


STEPS = ledger_schema.statements(ledger_schema.MIGRATIONS[2])


@pytest.mark.parametrize("gap", range(1, len(STEPS) + 1))
def test_a_fault_mid_migration_leaves_version_2(tmp_path, monkeypatch,
                                                gap):
    path = tmp_path / "v2.db"
    make_v2(path)
    script = ";\n".join([*STEPS[:gap], "INSERT INTO fault VALUES (1)",
                         *STEPS[gap:]])
    monkeypatch.setitem(ledger_schema.MIGRATIONS, 2, script)
    with pytest.raises(exception.LedgerError,
                       match=rf"from schema version 2 to {SCHEMA_VERSION} "
                             r"failed \(no such "
                             r"table: fault\); nothing was changed"):
        Ledger(path)
    assert names(path) == {"claims", "claims_instance"}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
    monkeypatch.undo()
    with Ledger(path) as led:
        assert led.leases() == {}


def test_journal_outlives_the_claim_and_is_forgotten(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        with led.transaction() as txn:
            txn.add([LedgerRecord(INST, 0, ADDR, CLAIMED, "net1", REQUEST,
                                  "ens1f0v0")])
            txn.journal(ADDR, to_json(STATE))
            txn.set_lease(INST, LeaseStart(5.0))
            # A repeated lease does not extend the first.
            assert not txn.set_lease(INST, LeaseStart(99.0))
        with led.transaction() as txn:
            txn.remove_instance(INST)
        assert led.records() == [] and led.leases() == {}
        assert led.journals() == {ADDR: STATE}
        with led.transaction() as txn:
            assert txn.forget_journal(ADDR)
            assert not txn.forget_journal(ADDR)
        assert led.journals() == {}


@pytest.mark.parametrize("table,row,why", [
    ("vf_journal", (ADDR, "{}", 3), "journal of device 0000:3b:02.0"),
    ("vf_journal", (ADDR, to_json(STATE), 2),
     "row version 2 is not one of 3, 4"),
    ("vf_journal", ("3b:02.0", to_json(STATE), 3),
     "'3b:02.0' is not a canonical PCI"),
    ("leases", (INST, "soon", None, None, 3), "start 'soon' is not a time"),
    ("leases", (INST, -1.0, None, None, 3), "start -1.0 is not a time"),
    ("leases", ("nope", 1.0, None, None, 3),
     "instance 'nope' is not a canonical"),
])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_bad_row_is_an_error_naming_file_and_row(tmp_path, table, row,
                                                  why, readonly):
    path = tmp_path / "l.db"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"INSERT INTO {table} VALUES "
                 f"({', '.join('?' * len(row))})", row)
    conn.commit()
    conn.close()
    with Ledger(path, readonly=readonly) as led, \
            pytest.raises(exception.LedgerError, match=why) as err:
        led.journals() if table == "vf_journal" else led.leases()
    assert str(path) in str(err.value)
    assert repr(row[0]) in str(err.value)


def test_a_journal_that_would_not_read_back_is_refused(tmp_path):
    with Ledger(tmp_path / "l.db") as led:
        with pytest.raises(exception.InvalidNetdevState,
                           match=r"journal of device 0000:3b:02\.0"), \
                led.transaction() as txn:
            txn.journal(ADDR, "[]")
        with pytest.raises(exception.LedgerError, match="canonical PCI"), \
                led.transaction() as txn:
            txn.journal("bogus", to_json(STATE))
        assert led.journals() == {}


# -- hostile rows -------------------------------------------------------------

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "100"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])
# NaN and None are NULL to SQLite, which the NOT NULL columns refuse.
VALUES = hst.one_of(hst.none(), hst.integers(-2**63, 2**63 - 1),
                    hst.floats(allow_nan=False), hst.text(max_size=40),
                    hst.binary(max_size=20))


@PROFILE
@given(instance=VALUES, started=VALUES, row_version=VALUES)
def test_any_lease_row_reads_back_or_is_refused_by_name(
        tmp_path, instance, started, row_version):
    path = tmp_path / "l.db"
    if not path.exists():
        Ledger(path).close()
    assume(None not in (instance, started, row_version))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM leases")
        conn.execute("INSERT INTO leases (instance_uuid, started, "
                     "row_version) VALUES (?, ?, ?)",
                     (instance, started, row_version))
        conn.commit()
    with Ledger(path) as led:
        try:
            leases = led.leases()
        except exception.LedgerError as exc:
            assert str(path) in str(exc) and "lease row" in str(exc)
        else:
            # REAL affinity may have turned text such as "5" into 5.0.
            assert list(leases) == [instance] and row_version in (3, 4)


@PROFILE
@given(text=hst.one_of(VALUES, hst.builds(
    lambda s, k, v: s.replace(k, v), hst.just(to_json(STATE)),
    hst.sampled_from(['"mtu":1500', '"up":true', '"vf":{', '"version":1']),
    hst.text(max_size=12))))
def test_any_journal_row_reads_back_or_is_refused_by_name(tmp_path, text):
    path = tmp_path / "l.db"
    if not path.exists():
        Ledger(path).close()
    assume(text is not None)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM vf_journal")
        conn.execute("INSERT INTO vf_journal VALUES (?, ?, 3)",
                     (ADDR, text))
        conn.commit()
    with Ledger(path) as led:
        try:
            journals = led.journals()
        except exception.LedgerError as exc:
            assert str(path) in str(exc) and ADDR in str(exc)
        else:
            assert to_json(journals[ADDR]) == text
