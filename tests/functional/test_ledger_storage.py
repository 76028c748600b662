"""The claims ledger on real storage faults: a full disk, a read-only
file system, a folder its user cannot write.

Each fault is an error naming the fault and the ledger, whose advice
loses nothing; the ledger is never published incomplete, a commit is
whole or absent, and once the fault is gone everything works again
without repair.  Small tmpfs file systems and read-only bind mounts,
made by the test and removed at teardown; a folder its user cannot
write is tried in a child process running as nobody.

Needs root; skips with the reason otherwise, fails instead with
PCI_PASSTHROUGH_REQUIRE_FUNCTIONAL=1 (CI sets it).
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from ledger_locked import (
    LOSING_ADVICE,
    NOBODY,
    as_nobody,
    reads,
    refused_for_permission,
)
from veth_netns import require_root

from pci_passthrough import exception
from pci_passthrough.ledger import CLAIMED, Ledger, LedgerRecord
from pci_passthrough.model.claims import PortRequest

pytestmark = pytest.mark.functional

# tmpfs counts its space in pages.
PAGE = 4096
# The file system of the sweep: room for a ledger with a few claims.
SIZE = 256 * 1024
FREE_KIB = range(0, 204, 4)
CLAIMS = 40


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def _umount(where: str) -> None:
    # A mount still busy is detached all the same, and the test fails:
    # nothing is left on the machine.
    try:
        _run("umount", where)
    except subprocess.CalledProcessError as exc:
        _run("umount", "--lazy", where)
        raise AssertionError(f"{where} was busy: {exc.stderr}") from exc


@pytest.fixture
def base() -> Iterator[str]:
    """A folder that nobody may enter: /tmp, not pytest's folders
    (which only root may enter)."""
    require_root("ledger storage faults", "tmpfs and bind mounts")
    folder = tempfile.mkdtemp(prefix="pcipt-ledgerfs-")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


@contextlib.contextmanager
def tmpfs(where: str, size: int = SIZE) -> Iterator[str]:
    os.makedirs(where)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
         "pcipt-ledgerfs", where)
    try:
        yield where
    finally:
        _umount(where)


def fill(folder: str, free: int) -> str:
    """A file taking all the space of ``folder``'s file system but
    ``free`` bytes; removing it frees the space."""
    st = os.statvfs(folder)
    filler = os.path.join(folder, "filler")
    with open(filler, "wb") as f:
        f.write(bytes(st.f_bfree * st.f_frsize - free))
    st = os.statvfs(folder)
    assert st.f_bfree * st.f_frsize == free
    return filler


def instance(n: int) -> str:
    return f"4f1a2b3c-0000-4000-8000-{n:012x}"


def record(n: int) -> LedgerRecord:
    return LedgerRecord(instance(n), 0, f"0000:3b:{n // 8:02x}.{n % 8}",
                        CLAIMED, "net1",
                        PortRequest(0, flavor="net1").to_json(), None)


def claim(ledger: Ledger, n: int) -> None:
    with ledger.transaction() as txn:
        txn.add([record(n)])


def held(path: str) -> list[str]:
    with Ledger(path) as ledger:
        return [r.instance_uuid for r in ledger.records()]


def assert_names(err: pytest.ExceptionInfo[exception.LedgerError],
                 kind: type[exception.LedgerError], path: str,
                 advice: str) -> None:
    assert type(err.value) is kind, str(err.value)
    assert path in str(err.value)
    assert advice in str(err.value)
    assert LOSING_ADVICE not in str(err.value)


def side_files_only(folder: str) -> bool:
    """Only the ledger and SQLite's files: no private file of a creator
    is left behind."""
    return all(name.startswith("claims.db") and not name.endswith(".new")
               for name in os.listdir(folder) if name != "filler")


# -- a full disk ------------------------------------------------------------

@pytest.mark.parametrize("free_kib", FREE_KIB)
def test_create_and_claim_on_a_full_disk_work_or_fail_whole(base, free_kib):
    with tmpfs(os.path.join(base, "fs")) as fs:
        path = os.path.join(fs, "claims.db")
        filler = fill(fs, free_kib * 1024)
        done: list[str] = []
        try:
            ledger = Ledger(path)
        except exception.LedgerError as exc:
            assert type(exc) is exception.LedgerDiskFull, str(exc)
            assert path in str(exc) and "nothing was created" in str(exc)
            assert os.listdir(fs) == ["filler"]
        else:
            with ledger:
                with pytest.raises(exception.LedgerError) as err:
                    for n in range(CLAIMS):
                        claim(ledger, n)
                        done.append(instance(n))
                assert_names(err, exception.LedgerDiskFull, path,
                             "Free space on the file system of")
                # The connection that failed still reads every claim
                # that succeeded, and only those.
                assert [r.instance_uuid for r in ledger.records()] == done
        assert side_files_only(fs)
        os.unlink(filler)
        # With space again, the ledger works without repair.
        with Ledger(path) as ledger:
            assert [r.instance_uuid for r in ledger.records()] == done
            claim(ledger, CLAIMS)
        assert held(path) == [*done, instance(CLAIMS)]
        assert side_files_only(fs)


def test_a_connection_that_hit_a_full_disk_works_once_space_is_freed(
        base):
    with tmpfs(os.path.join(base, "fs")) as fs:
        path = os.path.join(fs, "claims.db")
        with Ledger(path) as ledger:
            claim(ledger, 0)
            filler = fill(fs, 0)
            with pytest.raises(exception.LedgerDiskFull) as err:
                claim(ledger, 1)
            assert_names(err, exception.LedgerDiskFull, path,
                         "the transaction was rolled back")
            assert [r.instance_uuid for r in ledger.records()] == [
                instance(0)]
            os.unlink(filler)
            claim(ledger, 1)
        assert held(path) == [instance(0), instance(1)]


@pytest.mark.parametrize("free_kib", range(0, 132, 4))
def test_opening_a_ledger_on_a_full_disk_works_or_says_disk_full(
        base, free_kib):
    source = os.path.join(base, "claims.db")
    with Ledger(source) as ledger:
        for n in range(3):
            claim(ledger, n)
    with tmpfs(os.path.join(base, "fs")) as fs:
        path = os.path.join(fs, "claims.db")
        shutil.copyfile(source, path)
        filler = fill(fs, free_kib * 1024)
        try:
            Ledger(path).close()
        except exception.LedgerError as exc:
            assert type(exc) is exception.LedgerDiskFull, str(exc)
            assert path in str(exc) and LOSING_ADVICE not in str(exc)
        os.unlink(filler)
        assert held(path) == [instance(n) for n in range(3)]


# -- a read-only file system --------------------------------------------

@contextlib.contextmanager
def read_only_view(folder: str, where: str) -> Iterator[str]:
    """``folder`` mounted read-only at ``where``."""
    os.makedirs(where)
    _run("mount", "--bind", folder, where)
    try:
        _run("mount", "-o", "remount,bind,ro", where)
        yield where
    finally:
        _umount(where)


def test_a_ledger_on_a_read_only_file_system_is_read_never_refused(base):
    source = os.path.join(base, "rw")
    os.makedirs(source)
    with Ledger(os.path.join(source, "claims.db")) as ledger:
        claim(ledger, 0)
    with read_only_view(source, os.path.join(base, "ro")) as ro:
        path = os.path.join(ro, "claims.db")
        before = sorted(os.listdir(ro))
        with pytest.raises(exception.LedgerError) as err:
            Ledger(path)
        assert_names(err, exception.LedgerReadOnly, path,
                     f"mount -o remount,rw {ro}")
        with Ledger(path, readonly=True) as reader:
            assert [r.instance_uuid for r in reader.records()] == [
                instance(0)]
        assert sorted(os.listdir(ro)) == before


def test_a_ledger_with_a_writer_open_on_a_read_only_view(base):
    # The writer, through the writable mount, holds -wal and -shm open.
    # SQLite keeps a file open while another connection of the process
    # holds locks on it: the view outlives the writer.
    source = os.path.join(base, "rw")
    os.makedirs(source)
    with read_only_view(source, os.path.join(base, "ro")) as ro, \
            Ledger(os.path.join(source, "claims.db")) as writer:
        claim(writer, 0)
        path = os.path.join(ro, "claims.db")
        with pytest.raises(exception.LedgerError) as err:
            Ledger(path)
        assert_names(err, exception.LedgerReadOnly, path, "remount")
        with Ledger(path, readonly=True) as reader:
            assert [r.instance_uuid for r in reader.records()] == [
                instance(0)]


def test_no_ledger_is_created_on_a_read_only_file_system(base):
    source = os.path.join(base, "rw")
    os.makedirs(source)
    with read_only_view(source, os.path.join(base, "ro")) as ro:
        for path in (os.path.join(ro, "claims.db"),
                     os.path.join(ro, "sub", "claims.db")):
            with pytest.raises(exception.LedgerError) as err:
                Ledger(path)
            assert_names(err, exception.LedgerReadOnly, path, "remount")
            assert "nothing was created" in str(err.value)
    assert os.listdir(source) == []


def test_a_tmpfs_remounted_read_only_keeps_its_claims(base):
    with tmpfs(os.path.join(base, "fs")) as fs:
        path = os.path.join(fs, "claims.db")
        with Ledger(path) as ledger:
            claim(ledger, 0)
        _run("mount", "-o", "remount,ro", fs)
        with pytest.raises(exception.LedgerError) as err:
            Ledger(path)
        assert_names(err, exception.LedgerReadOnly, path,
                     f"mount -o remount,rw {fs}")
        _run("mount", "-o", "remount,rw", fs)
        assert held(path) == [instance(0)]


# -- a folder its user cannot write -------------------------------------

@pytest.fixture
def locked(base) -> str:
    """A folder nobody can enter and read but not write."""
    folder = os.path.join(base, "locked")
    os.makedirs(folder)
    os.chmod(folder, 0o555)
    return folder


def test_no_ledger_is_created_in_a_folder_its_user_cannot_write(locked):
    path = os.path.join(locked, "claims.db")
    assert as_nobody(refused_for_permission, path,
                     f"uid {NOBODY}", "nothing was created",
                     "fix their ownership") == 0
    assert os.listdir(locked) == []


def test_a_ledger_in_a_folder_its_user_cannot_write(locked):
    path = os.path.join(locked, "claims.db")
    os.chmod(locked, 0o755)
    with Ledger(path) as ledger:
        claim(ledger, 0)
    # The ledger is nobody's, its folder is not: SQLite cannot create
    # -wal and -shm there.
    os.chown(path, NOBODY, NOBODY)
    os.chmod(locked, 0o555)
    before = sorted(os.listdir(locked))
    assert as_nobody(refused_for_permission, path, locked,
                     f"uid {NOBODY}") == 0
    assert as_nobody(reads, path, 1) == 0
    assert sorted(os.listdir(locked)) == before
    assert held(path) == [instance(0)]


def test_a_ledger_its_user_cannot_write(base):
    folder = os.path.join(base, "own")
    os.makedirs(folder)
    path = os.path.join(folder, "claims.db")
    with Ledger(path) as ledger:
        claim(ledger, 0)
    os.chown(folder, NOBODY, NOBODY)
    assert as_nobody(refused_for_permission, path, "fix their") == 0
    assert as_nobody(reads, path, 1) == 0
    assert held(path) == [instance(0)]
