"""scan, explain and claims only show: they never create or change the
ledger file or its folder, and a missing ledger is no claims."""

import json
import os

import pytest
from conf_files import write_host_conf

from pci_passthrough.cli import main
from pci_passthrough.fixtures import standard_host as std

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"


@pytest.fixture
def host(tmp_path, make_sysfs_tree):
    root = make_sysfs_tree(std.INTEL_LAYOUT).root
    state = tmp_path / "state"
    conf = write_host_conf(
        tmp_path / "pci.conf", sysfs_root=root,
        state_path=state / "claims.db",
        device_specs=std.INTEL_DEVICE_SPECS, flavors=std.INTEL_FLAVORS)
    return str(conf), state


def cli(conf, *args):
    return main.main(["--config-file", conf, *args])


def snapshot(folder):
    """The folder's mtime, and every file's bytes and mtime; None when
    the folder does not exist."""
    if not folder.exists():
        return None
    files = {}
    for name in sorted(os.listdir(folder)):
        path = folder / name
        files[name] = (path.stat().st_mtime_ns, path.read_bytes())
    return folder.stat().st_mtime_ns, files


SHOW = [("scan",), ("claims",), ("claims", "--format", "json"),
        ("explain", "net1"), ("explain", "net1", "--format", "json")]


@pytest.mark.parametrize("args", SHOW)
def test_showing_with_no_ledger_creates_nothing(host, capsys, args):
    conf, state = host
    assert cli(conf, *args) == 0
    assert not state.exists()
    captured = capsys.readouterr()
    assert captured.err == ""
    if args[0] == "claims":
        if "json" in args:
            assert json.loads(captured.out) == {"allocations": []}
        else:
            # The table's header and nothing else.
            lines = captured.out.splitlines()
            assert len(lines) == 2
            assert lines[0].split() == ["INSTANCE", "PORT", "ADDRESS",
                                        "NETDEV", "FLAVOR", "STATE"]


@pytest.mark.parametrize("args", SHOW)
def test_showing_an_idle_ledger_changes_nothing(host, capsys, args):
    conf, state = host
    assert cli(conf, "claim", INST, "net1") == 0
    capsys.readouterr()
    before = snapshot(state)
    assert before is not None and list(before[1]) == ["claims.db"]
    assert cli(conf, *args) == 0
    out = capsys.readouterr().out
    assert snapshot(state) == before
    if args[0] == "claims":
        assert INST in out
    if args == ("explain", "net1"):
        assert f"in use by instance {INST} port 0" in out


def test_showing_a_ledger_in_use_changes_nothing_but_sqlite_memory(
        host, capsys):
    # With a writer connected, SQLite's -wal and -shm exist; the
    # commands read through them and create no file.  The -shm is
    # SQLite's shared memory (readers record their read marks in it), so
    # only the ledger and its -wal are compared byte for byte.
    from pci_passthrough.ledger import Ledger
    conf, state = host
    assert cli(conf, "claim", INST, "net1") == 0
    with Ledger(state / "claims.db") as writer:
        writer.records()
        names = sorted(os.listdir(state))
        db = (state / "claims.db").read_bytes()
        wal = (state / "claims.db-wal").read_bytes()
        for args in SHOW:
            assert cli(conf, *args) == 0
        assert sorted(os.listdir(state)) == names
        assert (state / "claims.db").read_bytes() == db
        assert (state / "claims.db-wal").read_bytes() == wal
    assert INST in capsys.readouterr().out


def test_claims_on_an_empty_ledger_file_is_an_error_naming_it(
        host, capsys):
    conf, state = host
    state.mkdir()
    (state / "claims.db").write_bytes(b"")
    assert cli(conf, "claims") == 1
    err = capsys.readouterr().err
    assert f"{state / 'claims.db'} is unusable: it is empty" in err
    assert (state / "claims.db").read_bytes() == b""


def test_claim_still_creates_the_ledger(host, capsys):
    conf, state = host
    assert cli(conf, "claim", INST, "net1") == 0
    assert (state / "claims.db").is_file()
