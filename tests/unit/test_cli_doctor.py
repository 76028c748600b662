"""pci-passthrough doctor from the command line: exit codes 0, 1 and 2,
table and JSON, --fix; on libvirt's test driver (one connection held
open by the test keeps test:///default's state shared with the
command's)."""

import json

import pytest
from cli_host import write_cli_host

from pci_passthrough.cli import main

ORPHAN = "pcipt-4f1a2b3c-0000-4000-8000-00000000abce-0"


@pytest.fixture
def conf(tmp_path, libvirt_conn):
    yield write_cli_host(tmp_path)
    for net in libvirt_conn.listAllNetworks(0):
        if net.name().startswith("pcipt-"):
            if net.isActive():
                net.destroy()
            net.undefine()


def test_a_clean_host_exits_0_and_doctor_alone_writes_nothing(
        conf, tmp_path, capsys):
    assert main.main(["--config-file", conf, "doctor"]) == 0
    assert "No findings." in capsys.readouterr().out
    assert not (tmp_path / "claims.db").exists()
    assert main.main(["--config-file", conf, "doctor", "--fix"]) == 0
    assert (tmp_path / "claims.db").exists()


def test_findings_exit_1_and_fix_repairs_them(conf, libvirt_conn,
                                              capsys):
    libvirt_conn.networkDefineXML(
        f"<network><name>{ORPHAN}</name><forward mode='bridge'>"
        f"<interface dev='eth0'/></forward></network>").create()
    assert main.main(["--config-file", conf, "doctor", "--format",
                      "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["clean"] is False
    assert [(f["kind"], f["subject"]) for f in data["findings"]] == [
        ("orphan-network", f"network {ORPHAN}")]
    assert main.main(["--config-file", conf, "doctor", "--fix"]) == 0
    out = capsys.readouterr().out
    assert ORPHAN in out and "fixed" in out and "1 finding(s), 0 left." \
        in out
    names = [n.name() for n in libvirt_conn.listAllNetworks(0)]
    assert ORPHAN not in names and "default" in names


def test_an_unhealthy_pf_is_a_finding_fix_cannot_clear(conf, tmp_path,
                                                        capsys):
    pf = "0000:3b:00.0"
    operstate = tmp_path / "sys" / "bus" / "pci" / "devices" / pf / \
        "net" / "ens1f0" / "operstate"
    operstate.write_text("down\n")
    for args in ([], ["--fix"]):
        assert main.main(["--config-file", conf, "doctor", "--format",
                          "json", *args]) == 1
        data = json.loads(capsys.readouterr().out)
        (finding,) = data["findings"]
        assert (finding["kind"], finding["subject"]) == (
            "pf-unhealthy", f"device {pf}")
        assert finding["problem"] == (
            "netdev ens1f0 lost carrier (operstate down): 3 free VF(s) "
            "of it cannot be claimed; no claim is held on it")
        assert "switch port of netdev ens1f0" in finding["repair"]
        assert (finding["fixable"], finding["fixed"]) == (False, False)
    assert finding["left"].startswith("not safe to repair")
    operstate.write_text("up\n")
    assert main.main(["--config-file", conf, "doctor"]) == 0


def test_an_unusable_ledger_exits_2(tmp_path, capsys):
    path = write_cli_host(tmp_path)
    (tmp_path / "claims.db").mkdir()
    assert main.main(["--config-file", path, "doctor"]) == 2
    err = capsys.readouterr().err
    assert "claims.db" in err and "it is a directory" in err
