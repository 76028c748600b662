"""A ledger its user cannot write, or in a folder it cannot write: an
error saying so, naming the ledger and the folder, whose advice loses
nothing (fix the ownership, never move the ledger away); the ledger is
left as it was and still reads."""

import os

import ledger_locked
import pytest
from ledger_locked import (
    NOBODY,
    as_nobody,
    lock,
    reads,
    refused_for_permission,
)

from pci_passthrough.ledger import CLAIMED, Ledger, LedgerRecord
from pci_passthrough.model.claims import PortRequest

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"

locked_folder = pytest.fixture(ledger_locked.locked_folder)


def make_ledger(path):
    with Ledger(path) as ledger, ledger.transaction() as txn:
        txn.add([LedgerRecord(INST, 0, "0000:3b:02.0", CLAIMED, "net1",
                              PortRequest(0, flavor="net1").to_json(),
                              None)])


def _user():
    return f"uid {NOBODY if os.geteuid() == 0 else os.geteuid()}"


def test_no_ledger_is_created_in_a_folder_its_user_cannot_write(
        locked_folder):
    lock(locked_folder)
    path = os.path.join(locked_folder, "claims.db")
    assert as_nobody(refused_for_permission, path,
                     "cannot create a file in its folder",
                     "nothing was created", _user(),
                     "fix their ownership or mode") == 0
    assert os.listdir(locked_folder) == []


def test_a_ledger_in_a_folder_its_user_cannot_write(locked_folder):
    # The ledger is the user's, its folder is not: SQLite cannot create
    # its -wal and -shm files there.
    path = os.path.join(locked_folder, "claims.db")
    make_ledger(path)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    lock(locked_folder)
    before = sorted(os.listdir(locked_folder))
    assert as_nobody(refused_for_permission, path, "nothing was changed",
                     f"write its folder {locked_folder}") == 0
    assert as_nobody(reads, path, 1) == 0
    assert sorted(os.listdir(locked_folder)) == before


def test_a_ledger_its_user_cannot_write(locked_folder):
    # SQLite would open it read-only without a word, and fail at the
    # first claim.
    path = os.path.join(locked_folder, "claims.db")
    make_ledger(path)
    os.chmod(path, 0o444)
    os.chmod(locked_folder, 0o777)
    assert as_nobody(refused_for_permission, path,
                     "cannot open it for writing",
                     "nothing was changed") == 0
    assert as_nobody(reads, path, 1) == 0
    assert os.listdir(locked_folder) == ["claims.db"]
