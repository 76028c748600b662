"""pci-passthrough placement show, request and sync (the last only
against a closed loopback port here; the functional tier talks to a real
Placement)."""

import json

import pytest
from conf_files import closed_port, write_demo_host_conf, write_placement_conf

from pci_passthrough.cli import main
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.model import placement_names as names


@pytest.fixture
def conf_file(tmp_path):
    st.build_tree(tmp_path / "sys", demo_hosts.DEMO_HOST_A)
    return write_demo_host_conf(tmp_path, "cmp1")


def run(capsys, *argv):
    code = main.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_json_is_the_tree(conf_file, capsys) -> None:
    code, out, _ = run(capsys, "--config-file", conf_file, "placement",
                       "show", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["nodename"] == "cmp1"
    assert [(p["name"], p["total"]) for p in doc["providers"]] == [
        ("cmp1_0000:3B:00.0_pcipt", 4), ("cmp1_0000:5E:00.0_pcipt", 3)]
    code, out, _ = run(capsys, "--config-file", conf_file, "placement",
                       "show")
    assert code == 0 and "CUSTOM_PCI_15B3_101E" in out


def test_request_json_lists_queries(conf_file, capsys) -> None:
    code, out, _ = run(capsys, "--config-file", conf_file, "placement",
                       "request", "grp1", "--count", "2", "--format",
                       "json")
    assert code == 0
    doc = json.loads(out)
    (query,) = doc["queries"]
    assert not query.startswith("?")
    assert "resources_pci1=CUSTOM_PCI_15B3_101E:1" in query
    assert names.value_trait("group", "grp1") in query
    # mlx does not name the group: no provider of this host serves it.
    code, out, _ = run(capsys, "--config-file", conf_file, "placement",
                       "request", "mlx", "--format", "json")
    assert json.loads(out)["queries"] == []


def test_unknown_flavor_is_one_line(conf_file, capsys) -> None:
    code, out, err = run(capsys, "--config-file", conf_file, "placement",
                         "request", "nope")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Unknown PCI flavor 'nope'" in err


def test_sync_with_placement_unreachable_is_one_line(conf_file, tmp_path,
                                                     capsys) -> None:
    port = closed_port()
    client = write_placement_conf(tmp_path / "placement.conf", port)
    code, out, err = run(capsys, "--config-file", conf_file,
                         "--config-file", client, "placement", "sync")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"127.0.0.1:{port} is unavailable" in err
    assert not (tmp_path / "claims.sqlite3").exists()


def test_sync_without_placement_options_says_what_is_missing(
        conf_file, capsys) -> None:
    code, _, err = run(capsys, "--config-file", conf_file, "placement",
                       "sync")
    assert code == 1 and "auth_type" in err and err.count("\n") == 1


def test_placement_modules_are_not_imported_at_startup() -> None:
    import subprocess
    import sys

    code = ("import sys; from pci_passthrough.cli import main; "
            "main.build_conf(['placement', 'show']); "
            "print(any(m.startswith('keystoneauth1') for m in "
            "sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("line", "expected"), [
    ('device_spec = {"address": "0000:3b:00.0", "resource_class": "-"}',
     "[pci_passthrough] device_spec, entry #3"),
    ("nodename = " + "n" * 190, "[pci_passthrough] nodename"),
])
def test_names_placement_cannot_take_are_config_errors(conf_file, capsys,
                                                       line,
                                                       expected) -> None:
    conf_file.write_text(conf_file.read_text() + line + "\n")
    code, out, err = run(capsys, "--config-file", conf_file, "placement",
                         "show")
    assert code == 1 and out == ""
    assert expected in err and err.count("\n") == 1
