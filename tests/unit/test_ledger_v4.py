"""Schema version 4: a lease's start read on the boot clock too; the
migration 3 -> 4 (all or nothing, like the others) and the validation
of the new columns, which are hostile input like every other."""

import contextlib
import math
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.ledger import SCHEMA_VERSION, LeaseStart, Ledger
from pci_passthrough.ledger import _schema as ledger_schema

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
OTHER = "4f1a2b3c-0000-4000-8000-00000000abce"
BOOT_ID = "0e6c3a51-8a4f-4d0e-9a8e-6f1c2b3d4e5f"


def make_v3(path):
    conn = sqlite3.connect(path)
    conn.executescript(ledger_schema.CLAIMS_SCHEMA
                       + ledger_schema.V3_SCHEMA)
    conn.executemany("INSERT INTO leases VALUES (?, ?, 3)",
                     [(INST, 1000.0), (OTHER, 2000.5)])
    conn.execute(f"PRAGMA application_id={ledger_schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()


def dump(path):
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return (conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("SELECT type, name, tbl_name, sql FROM "
                             "sqlite_master ORDER BY name").fetchall(),
                conn.execute("SELECT * FROM leases ORDER BY 1").fetchall())


def test_a_version_3_ledger_keeps_its_leases_on_the_wall_clock(tmp_path):
    path = tmp_path / "v3.db"
    make_v3(path)
    before = dump(path)
    kept = {INST: LeaseStart(1000.0), OTHER: LeaseStart(2000.5)}
    with Ledger(path, readonly=True) as ro:
        assert ro.leases() == kept
    assert dump(path) == before
    with Ledger(path) as led:
        assert led.leases() == kept
        with led.transaction() as txn:
            assert txn.restart_lease(OTHER, LeaseStart(3000.0, 5.0,
                                                       BOOT_ID))
        assert led.leases()[OTHER] == LeaseStart(3000.0, 5.0, BOOT_ID)
    version, schema, rows = dump(path)
    # Rows keep the version they were written under.
    assert version == SCHEMA_VERSION == 4
    assert rows == [(INST, 1000.0, None, None, 3),
                    (OTHER, 3000.0, 5.0, BOOT_ID, 4)]
    Ledger(tmp_path / "new.db").close()
    assert schema == dump(tmp_path / "new.db")[1]


STEPS = ledger_schema.statements(ledger_schema.MIGRATIONS[3])


@pytest.mark.parametrize("gap", range(1, len(STEPS) + 1))
def test_a_fault_mid_migration_leaves_version_3(tmp_path, monkeypatch,
                                                gap):
    path = tmp_path / "v3.db"
    make_v3(path)
    before = dump(path)
    script = ";\n".join([*STEPS[:gap], "INSERT INTO fault VALUES (1)",
                         *STEPS[gap:]])
    monkeypatch.setitem(ledger_schema.MIGRATIONS, 3, script)
    with pytest.raises(exception.LedgerError,
                       match=r"from schema version 3 to 4 failed \(no such "
                             r"table: fault\); nothing was changed"):
        Ledger(path)
    assert dump(path) == before
    monkeypatch.undo()
    with Ledger(path) as led:
        assert led.leases()[INST] == LeaseStart(1000.0)


def test_a_lease_reads_back_as_written_and_restarts(tmp_path):
    start = LeaseStart(1_700_000_000.25, 86_400.5, BOOT_ID)
    with Ledger(tmp_path / "l.db") as led:
        with led.transaction() as txn:
            assert txn.set_lease(INST, start)
            assert not txn.set_lease(INST, LeaseStart(1.0))
            assert not txn.restart_lease(OTHER, start)
        assert led.leases() == {INST: start}
        with led.transaction() as txn:
            assert txn.restart_lease(INST, LeaseStart(2.0))
        assert led.leases() == {INST: LeaseStart(2.0)}


@pytest.mark.parametrize("start,why", [
    (LeaseStart(math.nan), "start nan is not a time"),
    (LeaseStart(math.inf), "start inf is not a time"),
    (LeaseStart(1.0, -1.0, BOOT_ID), "boot clock start -1.0 is not"),
    (LeaseStart(1.0, math.nan, BOOT_ID), "boot clock start nan is not"),
    (LeaseStart(1.0, 5.0), "boot id None is not a canonical UUID"),
    (LeaseStart(1.0, None, BOOT_ID), "boot clock start None is not"),
    (LeaseStart(1.0, 5.0, BOOT_ID.upper()), "is not a canonical UUID"),
    (LeaseStart(1.0, True, BOOT_ID), "boot clock start True is not"),
])
def test_a_lease_that_would_not_read_back_is_refused(tmp_path, start,
                                                     why):
    with Ledger(tmp_path / "l.db") as led:
        with pytest.raises(exception.LedgerError, match=why), \
                led.transaction() as txn:
            txn.set_lease(INST, start)
        assert led.leases() == {}


@pytest.mark.parametrize("row,why", [
    ((INST, 1.0, -5.0, BOOT_ID, 4), "boot clock start -5.0 is not"),
    ((INST, 1.0, "soon", BOOT_ID, 4), "boot clock start 'soon' is not"),
    ((INST, 1.0, float("inf"), BOOT_ID, 4), "boot clock start inf"),
    # SQLite stores a NaN as NULL.
    ((INST, 1.0, float("nan"), BOOT_ID, 4), "boot clock start None"),
    ((INST, 1.0, 5.0, None, 4), "boot id None is not a canonical UUID"),
    ((INST, 1.0, 5.0, "boot-1", 4), "boot id 'boot-1' is not"),
    ((INST, 1.0, 5.0, 7, 4), "boot id '7' is not"),
    ((INST, 1.0, 5.0, BOOT_ID, 3), "version 3 has no boot clock"),
    ((INST, 1.0, None, None, 5), "row version 5 is not one of 3, 4"),
    ((INST, -1.0, 5.0, BOOT_ID, 4), "start -1.0 is not a time"),
])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_bad_lease_row_is_an_error_naming_file_and_row(tmp_path, row,
                                                         why, readonly):
    path = tmp_path / "l.db"
    Ledger(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", row)
        conn.commit()
    with Ledger(path, readonly=readonly) as led, \
            pytest.raises(exception.LedgerError, match=why) as err:
        led.leases()
    assert str(path) in str(err.value)
    assert f"lease row of instance {INST!r}" in str(err.value)


EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "100"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])
VALUES = hst.one_of(hst.none(), hst.integers(-2**63, 2**63 - 1),
                    hst.floats(), hst.text(max_size=40),
                    hst.binary(max_size=20), hst.just(BOOT_ID))


@PROFILE
@given(boot=VALUES, boot_id=VALUES, row_version=VALUES)
def test_any_boot_reading_reads_back_or_is_refused_by_name(
        tmp_path, boot, boot_id, row_version):
    path = tmp_path / "l.db"
    if not path.exists():
        Ledger(path).close()
    assume(row_version is not None)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DELETE FROM leases")
        conn.execute("INSERT INTO leases VALUES (?, 1.0, ?, ?, ?)",
                     (INST, boot, boot_id, row_version))
        conn.commit()
    with Ledger(path) as led:
        try:
            leases = led.leases()
        except exception.LedgerError as exc:
            assert str(path) in str(exc) and "lease row" in str(exc)
        else:
            (start,) = leases.values()
            assert row_version in (3, 4)
            if start.boot is None:
                assert start.boot_id is None
            else:
                assert row_version == 4 and start.boot_id == BOOT_ID
                assert 0 <= start.boot < 1e11
