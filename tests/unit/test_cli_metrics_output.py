"""pci-passthrough metrics when the pools cannot be read: the file the
textfile collector reads is replaced all the same, saying
pool_source_up 0 and holding no pool counts, so a scraper never takes
the last good counts for fresh ones; the command still fails with one
line saying what broke."""

import os
import pathlib
import shutil

import pytest
from conf_files import write_host_conf
from prometheus_client.parser import text_string_to_metric_families

from pci_passthrough.cli import main
from pci_passthrough.fixtures import sysfs_tree as st

UP = "pci_passthrough_pool_source_up"
VFS = "pci_passthrough_pool_vfs"


def samples(text: str) -> dict[str, list[float]]:
    """Every sample's value, by sample name."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample.value)
    return found


@pytest.fixture
def host(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A host with one PF of three VFs; its config and ledger paths."""
    st.build_tree(tmp_path / "sys", st.HostLayout((
        st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=3,
                    netdev="ens1f0"),
    )))
    ledger = tmp_path / "claims.db"
    conf = write_host_conf(
        tmp_path / "pci.conf", sysfs_root=tmp_path / "sys",
        state_path=ledger,
        device_specs=['{"vendor_id": "8086", "product_id": "154c", '
                      '"physical_network": "physnet1"}'])
    return conf, ledger


def metrics(conf: pathlib.Path, *args: str) -> int:
    return main.main(["--config-file", str(conf), "metrics", *args])


def break_ledger(ledger: pathlib.Path) -> str:
    ledger.write_bytes(b"not a database\x00" * 64)
    return "unusable"


def remove_sysfs(ledger: pathlib.Path) -> str:
    shutil.rmtree(ledger.parent / "sys")
    return "Cannot scan sysfs root"


@pytest.mark.parametrize("breakage", [break_ledger, remove_sysfs])
def test_a_source_that_breaks_replaces_the_file_with_source_down(
        host, tmp_path, capsys, breakage) -> None:
    conf, ledger = host
    out = tmp_path / "textfile" / "pci.prom"
    out.parent.mkdir()
    assert metrics(conf, "--output", str(out)) == 0
    good = samples(out.read_text())
    assert good[UP] == [1] and sum(good[VFS]) == 3
    capsys.readouterr()

    what_broke = breakage(ledger)
    assert metrics(conf, "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pci-passthrough: "
                                                   "error: ")
    assert what_broke in err
    assert f"{out} now says {UP} 0" in err
    now = samples(out.read_text())
    assert now[UP] == [0]
    assert VFS not in now
    # Replaced by a rename: nothing half-written is left beside it.
    assert os.listdir(out.parent) == ["pci.prom"]


def test_stdout_says_source_down_too(host, capsys) -> None:
    conf, ledger = host
    break_ledger(ledger)
    assert metrics(conf) == 1
    captured = capsys.readouterr()
    assert samples(captured.out)[UP] == [0]
    assert VFS not in samples(captured.out)
    assert captured.err.count("\n") == 1 and "unusable" in captured.err
