"""Ledgers that are refused, never reset: empty, not SQLite, of another
application, of a newer or unknown schema, with other tables, or holding
a row that does not validate.  The error names the file (and the row)
and says what to do; the file is left byte for byte as it was."""

import json
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.ledger import (
    APPLICATION_ID,
    CLAIMED,
    SCHEMA_VERSION,
    Ledger,
    LedgerRecord,
)
from pci_passthrough.ledger._rows import (
    InvalidRow,
    check_request,
    check_request_json,
    check_row,
)
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.pci_address import normalize_address

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
ADDR = "0000:3b:02.0"
REQUEST = PortRequest(0, flavor="net1", mac="fa:16:3e:00:00:01",
                      vlan=100).to_json()
EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "200"))
RESTORE = "restore it from a backup"


def good_row():
    return {"instance_uuid": INST, "port_index": 0, "address": ADDR,
            "state": "claimed", "flavor": "net1", "request": REQUEST,
            "netdev": "ens1f0v0", "row_version": SCHEMA_VERSION}


def make_ledger(path):
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([LedgerRecord(INST, 0, ADDR, CLAIMED, "net1", REQUEST,
                              "ens1f0v0")])


def _refused(path, match, readonly=False):
    before = path.read_bytes() if path.is_file() else None
    listing = sorted(os.listdir(path.parent))
    with pytest.raises(exception.LedgerError, match=match) as err:
        Ledger(path, readonly=readonly)
    assert str(path) in str(err.value)
    if before is not None:
        assert path.read_bytes() == before
    if readonly:
        assert sorted(os.listdir(path.parent)) == listing
    return str(err.value)


# -- files ----------------------------------------------------------------

def _empty(path):
    path.write_bytes(b"")


def _not_sqlite(path):
    path.write_bytes(b"\x00junk" * 1000)


def _foreign(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def _foreign_empty(path):
    # An empty SQLite database (application_id 0, no tables) is not a
    # ledger either: it is not made into one.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=7")
    conn.commit()
    conn.close()


def _set_version(version):
    def make(path):
        make_ledger(path)
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version={version}")
        conn.commit()
        conn.close()
    return make


def _extra_table(path):
    make_ledger(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()


def _no_unique(path):
    # The right ids, but a claims table without its UNIQUE constraints.
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE claims (address TEXT, instance_uuid TEXT, "
        "port_index INTEGER, state TEXT, flavor TEXT, request TEXT, "
        "netdev TEXT, row_version INTEGER);"
        "CREATE INDEX claims_instance ON claims (instance_uuid);")
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.commit()
    conn.close()


def _truncated(size):
    def make(path):
        with Ledger(path) as ledger, ledger.transaction() as txn:
            txn.add([LedgerRecord(f"4f1a2b3c-0000-4000-8000-{i:012x}", 0,
                                  f"0000:3b:{i // 8:02x}.{i % 8}", CLAIMED,
                                  "net1", PortRequest(0, flavor="net1")
                                  .to_json(), None) for i in range(200)])
        os.truncate(path, size)
    return make


FILES = [
    (_truncated(600), "not a readable SQLite database.*" + RESTORE),
    (_truncated(4096), r"database disk image is malformed.*" + RESTORE),
    (_truncated(12288), r"database disk image is malformed.*" + RESTORE),
    (_empty, r"empty \(0 bytes\).*claims are lost.*" + RESTORE),
    (_not_sqlite, "not a SQLite database.*state_path"),
    (_foreign, r"SQLite database of something else \(application_id "
               r"0x0\), not a claims ledger"),
    (_foreign_empty, "SQLite database of something else"),
    (_set_version(SCHEMA_VERSION + 1),
     f"schema version {SCHEMA_VERSION + 1} is newer.*run the newer"),
    (_set_version(0), "schema version 0 is unknown; " + RESTORE),
    (_extra_table, "not those of a schema version 4 ledger.*" + RESTORE),
    (_no_unique, "not those of a schema version 4 ledger"),
]


@pytest.mark.parametrize("make,match", FILES)
@pytest.mark.parametrize("readonly", [False, True])
def test_untrusted_files_are_refused_never_reset(tmp_path, make, match,
                                                 readonly):
    path = tmp_path / "claims.db"
    make(path)
    _refused(path, match, readonly)


# -- rows -----------------------------------------------------------------

BAD_ROWS = [
    ("state", "allocated", "state 'allocated' is not one of"),
    ("state", "", "state '' is not one of"),
    ("address", "0000:3B:02.0", "not a canonical PCI address"),
    ("address", "3b:02.0", "not a canonical PCI address"),
    ("address", "0000:3b:20.0", "not a canonical PCI address"),
    ("address", "00000:3b:02.0", "not a canonical PCI address"),
    ("instance_uuid", INST.upper(), "not a canonical UUID"),
    ("instance_uuid", "../../etc", "not a canonical UUID"),
    ("port_index", -1, "port index -1 is not an integer from 0 to 9999"),
    ("port_index", 10000, "port index 10000"),
    ("port_index", "zero", "port index 'zero'"),
    ("port_index", 1.5, "port index 1.5"),
    ("request", '{"flavor": "net1"}', "not the JSON of a port request"),
    ("request", "not json", "not the JSON of a port request"),
    ("request", "[" * 100000, "not the JSON of a port request"),
    ("request", REQUEST.replace('"vlan": 100', '"vlan": 5000'),
     "VLAN 5000 is not from 1 to 4094"),
    ("request", REQUEST.replace("fa:16", "FA:16"), "as pci_passthrough"),
    ("request", REQUEST.replace(", ", ","), "as pci_passthrough"),
    ("request", PortRequest(0, flavor="other").to_json(),
     "request flavor 'other' differs from the row's flavor 'net1'"),
    ("request", PortRequest(3, flavor="net1").to_json().replace(
        '"needs_netdev": true', '"needs_netdev": 1'), "port request"),
    ("netdev", "bad:name", "netdev 'bad:name' is not a valid Linux"),
    ("netdev", "x" * 16, "is not a valid Linux interface name"),
    ("netdev", "", "is not a valid Linux interface name"),
    ("row_version", 1, "row version 1 is not one"),
    ("row_version", 5, "row version 5 is not one"),
    ("flavor", b"net1", "flavor b'net1' is not text"),
    ("state", b"claimed", "state b'claimed' is not one of"),
]


def _store(path, row):
    make_ledger(path)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM claims")
    conn.execute(
        "INSERT INTO claims (instance_uuid, port_index, address, state, "
        "flavor, request, netdev, row_version) VALUES "
        "(:instance_uuid, :port_index, :address, :state, :flavor, "
        ":request, :netdev, :row_version)", row)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("field,value,why", BAD_ROWS)
@pytest.mark.parametrize("readonly", [False, True])
def test_a_row_that_does_not_validate_is_refused_naming_it(
        tmp_path, field, value, why, readonly):
    path = tmp_path / "claims.db"
    row = good_row() | {field: value}
    _store(path, row)
    message = _refused(path, why, readonly)
    assert f"the row of address {row['address']!r}, instance " \
           f"{row['instance_uuid']!r}, port {row['port_index']!r}" \
           in message
    assert RESTORE in message and "virsh net-list" in message


def test_a_good_row_stored_raw_is_accepted(tmp_path):
    # The refusals above are about the one field each changes.
    path = tmp_path / "claims.db"
    _store(path, good_row())
    for readonly in (False, True):
        with Ledger(path, readonly=readonly) as ledger:
            (rec,) = ledger.records()
            assert rec.request == REQUEST


def test_a_bad_row_written_by_another_process_is_refused_at_reload(
        tmp_path):
    path = tmp_path / "claims.db"
    make_ledger(path)
    with Ledger(path) as ledger:
        conn = sqlite3.connect(path)
        conn.execute("UPDATE claims SET state = 'bogus'")
        conn.commit()
        conn.close()
        with pytest.raises(exception.LedgerError, match="state 'bogus'"):
            ledger.records()
        with pytest.raises(exception.LedgerError, match="state 'bogus'"), \
                ledger.transaction() as txn:
            txn.records()


@pytest.mark.parametrize("field,value,why", [
    ("netdev", "bad:name", "netdev 'bad:name'"),
    ("request", "{}", "not the JSON of a port request"),
    ("address", "0000:3b:2.0", "not a canonical PCI address"),
])
def test_a_record_that_would_not_validate_is_never_written(
        tmp_path, field, value, why):
    path = tmp_path / "claims.db"
    make_ledger(path)
    before = Ledger(path).records()
    fields = {k: v for k, v in good_row().items() if k != "row_version"}
    fields |= {"address": "0000:3b:02.1", "port_index": 1,
               "request": PortRequest(1, flavor="net1").to_json()}
    fields[field] = value
    with Ledger(path) as ledger:
        with pytest.raises(exception.LedgerError,
                           match=f"refusing to write .*{why}"), \
                ledger.transaction() as txn:
            txn.add([LedgerRecord(**fields)])
        assert ledger.records() == before


# -- hypothesis: the row checks against the library's own parsers ---------

PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])


def _canonical(text):
    try:
        return normalize_address(text) == text
    except ValueError:
        return False


@PROFILE
@given(hst.one_of(
    hst.from_regex(r"[0-9a-fA-F]{1,9}:[0-9a-f]{1,3}:[0-9a-f]{1,3}\.[0-9]",
                   fullmatch=True),
    hst.text(max_size=20)))
def test_the_address_check_is_normalize_address(text):
    row = good_row() | {"address": text}
    try:
        check_row(**row)
        accepted = True
    except InvalidRow:
        accepted = False
    assert accepted == _canonical(text)


@PROFILE
@given(index=hst.integers(0, 9999),
       flavor=hst.one_of(hst.none(), hst.text(max_size=10)),
       mac=hst.one_of(hst.none(), hst.from_regex(
           r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", fullmatch=True)),
       vlan=hst.one_of(hst.none(), hst.integers(1, 4094)),
       needs_netdev=hst.booleans())
def test_every_request_a_port_request_writes_is_accepted(
        index, flavor, mac, vlan, needs_netdev):
    port = PortRequest(index, flavor=flavor,
                       spec=None if flavor is not None else {"a": "b"},
                       mac=mac, vlan=vlan, needs_netdev=needs_netdev)
    check_row(**good_row() | {"port_index": index, "flavor": flavor,
                              "request": port.to_json()})


@PROFILE
@given(hst.dictionaries(
    hst.sampled_from(["flavor", "spec", "mac", "vlan", "needs_netdev",
                      "extra"]),
    hst.one_of(hst.none(), hst.booleans(), hst.integers(-5, 5000),
               hst.text(max_size=8),
               hst.dictionaries(hst.text(max_size=3), hst.text(max_size=3),
                                max_size=2))))
def test_a_request_is_accepted_only_if_it_round_trips(data):
    text = json.dumps(data, sort_keys=True)
    row = good_row() | {"request": text, "flavor": data.get("flavor")}
    try:
        check_row(**row)
    except InvalidRow:
        return
    port = PortRequest.from_json(0, text)
    assert port.to_json() == text and port.flavor == row["flavor"]


def _accepts(check, *args):
    try:
        check(*args)
    except InvalidRow:
        return False
    return True


@PROFILE
@given(flavor=hst.text(max_size=6), index=hst.integers(0, 9999),
       mac=hst.one_of(hst.none(), hst.from_regex(
           r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", fullmatch=True)),
       vlan=hst.one_of(hst.none(), hst.integers(1, 4094)),
       needs_netdev=hst.booleans(), data=hst.data())
def test_the_fast_request_check_agrees_with_the_full_one(
        flavor, index, mac, vlan, needs_netdev, data):
    # Valid requests and single-character edits of them: the fast path
    # for flavor requests accepts exactly what the JSON round trip does.
    text = PortRequest(index, flavor=flavor, mac=mac, vlan=vlan,
                       needs_netdev=needs_netdev).to_json()
    if data.draw(hst.booleans()):
        at = data.draw(hst.integers(0, len(text) - 1))
        char = data.draw(hst.sampled_from(
            [*'"\\:, 0123456789abfnrtuxyz{}[]', "\u00e9", "\x01"]))
        text = text[:at] + char + text[at + 1:]
    row_flavor = data.draw(hst.sampled_from([flavor, flavor + "x"]))
    assert _accepts(check_request, text, index, row_flavor) == \
        _accepts(check_request_json, text, index, row_flavor)
