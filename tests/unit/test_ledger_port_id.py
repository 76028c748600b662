"""A port's Neutron UUID inside the request JSON a ledger row already
holds (no schema change): rows with one are read back, rows without
one are exactly what earlier versions wrote, and a hand-edited or
hostile port_id is refused naming the row, by the fast check and the
full one alike."""

import json
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.ledger import SCHEMA_VERSION, Ledger, LedgerRecord
from pci_passthrough.ledger._rows import (
    InvalidRow,
    check_request,
    check_request_json,
    check_row,
)
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"
PORT = "0b5a6a7e-8f9c-4d2e-a1b3-c4d5e6f70819"
EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "200"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def row(request, flavor="net1"):
    return {"instance_uuid": INST, "port_index": 3,
            "address": "0000:3b:02.0", "state": "plugged",
            "flavor": flavor, "request": request, "netdev": "ens1f0v0",
            "row_version": SCHEMA_VERSION}


def test_a_request_without_port_id_is_written_as_before():
    assert PortRequest(0, flavor="net1", mac="fa:16:3e:00:00:01").to_json() \
        == ('{"flavor": "net1", "mac": "fa:16:3e:00:00:01", '
            '"needs_netdev": true, "spec": null, "vlan": null}')


def test_a_port_id_is_kept_in_lower_case_and_read_back():
    text = PortRequest(3, flavor="net1", port_id=PORT.upper()).to_json()
    assert json.loads(text)["port_id"] == PORT
    check_row(**row(text))
    assert PortRequest.from_json(3, text).port_id == PORT


def test_a_ledger_holding_port_ids_reopens(tmp_path):
    path = tmp_path / "claims.db"
    text = PortRequest(3, spec={"physical_network": "physnet1"},
                       port_id=PORT).to_json()
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([LedgerRecord(INST, 3, "0000:3b:02.0", "plugged", None,
                              text, "ens1f0v0")])
    for readonly in (False, True):
        with Ledger(path, readonly=readonly) as ledger:
            (rec,) = ledger.records()
            assert rec.request == text


GOOD = PortRequest(3, flavor="net1", port_id=PORT).to_json()


@pytest.mark.parametrize("text", [
    GOOD.replace(PORT, PORT.upper()),
    GOOD.replace(PORT, PORT.replace("-", "")),
    GOOD.replace(f'"{PORT}"', "null"),
    GOOD.replace(f'"{PORT}"', "42"),
    GOOD.replace(f'"{PORT}"', '["x"]'),
    GOOD.replace(f'"{PORT}"', '""'),
    GOOD.replace(f'"{PORT}"', f'"{PORT} "'),
    GOOD.replace('"port_id"', '"port"'),
    GOOD.replace('"port_id"', '"port_id", "port_id": "x"'),
    GOOD.replace(', "spec"', ', "port_uuid": "x", "spec"'),
    GOOD.replace('"port_id": ', '"port_id":'),
])
def test_a_port_id_not_as_the_library_writes_it_is_refused(text, tmp_path):
    with pytest.raises(InvalidRow, match="is not the JSON of a port "
                                         "request"):
        check_row(**row(text))
    # And a ledger holding it does not open.
    path = tmp_path / "claims.db"
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([LedgerRecord(INST, 3, "0000:3b:02.0", "plugged", "net1",
                              GOOD, "ens1f0v0")])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE claims SET request = ?", (text,))
    conn.commit()
    conn.close()
    with pytest.raises(exception.LedgerError, match="port request"):
        Ledger(path)


def _accepts(check, *args):
    try:
        check(*args)
    except InvalidRow:
        return False
    return True


@PROFILE
@given(port_id=hst.uuids().map(str), vlan=hst.one_of(
    hst.none(), hst.integers(1, 4094)), data=hst.data())
def test_the_fast_check_agrees_with_the_full_one(port_id, vlan, data):
    text = PortRequest(3, flavor="net1", vlan=vlan,
                       port_id=port_id).to_json()
    if data.draw(hst.booleans()):
        at = data.draw(hst.integers(0, len(text) - 1))
        char = data.draw(hst.sampled_from(
            [*'"\\:,- 0123456789abfABFnrtuxyz{}[]', "\u00e9", "\x01"]))
        text = text[:at] + char + text[at + 1:]
    assert _accepts(check_request, text, 3, "net1") == \
        _accepts(check_request_json, text, 3, "net1")
