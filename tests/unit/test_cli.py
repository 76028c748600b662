"""The pci-passthrough command: scan and demo, as an operator runs them."""

import json
import subprocess
import sys

import pytest

from pci_passthrough.cli import main
from pci_passthrough.fixtures import sysfs_tree as st

SCAN_KEYS = ["address", "dev_type", "vendor_id", "product_id",
             "parent_addr", "vf_index", "numa_node", "driver", "netdev",
             "mac", "iommu_group", "assignable", "tags"]


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "sys"
    st.build_tree(root, st.HostLayout((
        st.PfLayout("intel-82599", "0000:04:00.0", numvfs=2,
                    vf_drivers={1: "vfio-pci"}, netdev="ens1f0",
                    numa_node=None),
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1),
    )))
    return root


def write_conf(tmp_path, *lines):
    path = tmp_path / "pci.conf"
    path.write_text("[pci_passthrough]\n" + "\n".join(lines) + "\n")
    return str(path)


def test_scan_json_has_exactly_the_documented_shape(tmp_path, host,
                                                     capsys):
    conf = write_conf(
        tmp_path,
        'device_spec = {"address": "0000:04:00.0", "group": "grp1"}')
    st.vanish(st.BuiltTree(host, {"0000:5e:01.0": st.BuiltDevice(
        "0000:5e:01.0", next(host.glob("devices/**/0000:5e:01.0")),
        None)}), "0000:5e:01.0")
    assert main.main(["--config-file", conf, "scan", "--sysfs-root",
                      str(host), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["sysfs_root", "devices", "errors"]
    assert doc["sysfs_root"] == str(host)
    addresses = [d["address"] for d in doc["devices"]]
    assert addresses == ["0000:04:00.0", "0000:04:10.0", "0000:04:10.2",
                         "0000:5e:00.0"]
    for dev in doc["devices"]:
        assert list(dev) == SCAN_KEYS
    pf, vf0, vf1, other = doc["devices"]
    assert pf["parent_addr"] is None and pf["numa_node"] is None
    assert (vf0["assignable"], vf0["tags"]) == (True, {"group": "grp1"})
    assert (vf1["driver"], vf1["netdev"]) == ("vfio-pci", None)
    assert (other["assignable"], other["tags"]) == (False, {})
    (err,) = doc["errors"]
    assert list(err) == ["path", "reason"] and "0000:5e:01.0" in err["path"]


def test_scan_table_lists_devices(host, capsys):
    assert main.main(["scan", "--sysfs-root", str(host)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "ADDRESS", "TYPE", "VENDOR:PRODUCT", "PF", "VF", "NETDEV", "NUMA",
        "DRIVER", "ASSIGNABLE", "TAGS"]
    assert "0000:04:10.0  type-VF  8086:10ed" in out


def test_sysfs_root_option_from_the_config_file(tmp_path, host, capsys):
    conf = write_conf(tmp_path, f"sysfs_root = {host}")
    assert main.main(["--config-file", conf, "scan", "--format",
                      "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["devices"]) == 5


@pytest.mark.parametrize("args,message", [
    (["scan", "--sysfs-root", "/nonexistent/sys"],
     "Cannot scan sysfs root /nonexistent/sys"),
])
def test_missing_root_is_a_one_line_error(args, message, capsys):
    assert main.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_invalid_config_is_a_one_line_error(tmp_path, host, capsys):
    conf = write_conf(tmp_path, 'device_spec = {"vendor_id": "80860"}')
    assert main.main(["--config-file", conf, "scan", "--sysfs-root",
                      str(host)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "[pci_passthrough] device_spec, entry #1" in err
    assert "vendor_id '80860'" in err


def test_missing_config_file_is_an_error(capsys):
    assert main.main(["--config-file", "/nonexistent.conf", "scan"]) == 2
    assert "/nonexistent.conf" in capsys.readouterr().err


def test_console_script_runs_with_debug_logging(host):
    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", "--debug",
         "scan", "--sysfs-root", str(host), "--format", "json"],
        capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["devices"]


def test_demo_tells_the_whole_story(tmp_path, capsys):
    assert main.main(["demo", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(steps) == 9
    assert "discovery on host A" in out
    assert "carries the special attribute group=grp1" in out
    assert "function 8 is over its maximum 7" in out
    assert "same names on both hosts, each holding its own VF" in out
    assert "refused before migrating" in out
    assert "Nothing was claimed or defined here" in out
    assert "host A: 0 networks, 0 claims" in out
    assert "host B: 0 networks, 0 claims" in out
    assert (tmp_path / "host-a" / "sys" / "bus" / "pci").is_dir()


def test_log_file_option_writes_the_log(tmp_path, host):
    log = tmp_path / "pci.log"
    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", "--debug",
         "--log-file", str(log), "scan", "--sysfs-root", str(host)],
        capture_output=True, text=True, check=True)
    assert "0000:04:10.0" in proc.stdout
    assert "DEBUG" in log.read_text()
