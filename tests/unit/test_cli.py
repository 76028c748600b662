"""The pci-passthrough command: scan and demo, as an operator runs them;
what each command loads, and its logging."""

import argparse
import ast
import importlib
import json
import logging
import pathlib
import re
import subprocess
import sys

import pytest
from conf_files import write_section
from oslo_config import cfg

import pci_passthrough
from pci_passthrough.cli import log_setup, main
from pci_passthrough.fixtures import sysfs_tree as st

PACKAGE = pathlib.Path(pci_passthrough.__file__).parent

# Runs the command in a fresh interpreter, then writes the names of every
# module it loaded to the file named by the first argument.
PROBE = """
import json, sys
from pci_passthrough.cli import main
try:
    code = main.main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""

# What neither --help nor scan needs: the tracker and the agent with its
# network drivers, libvirt, lxml, the test fixtures, the other commands,
# oslo.log (unless a logging option asks for it) and oslo.privsep.
HEAVY = {"pci_passthrough.agent", "pci_passthrough.tracker",
         "pci_passthrough.ledger", "pci_passthrough.network",
         "pci_passthrough.fixtures", "pci_passthrough.cli.claims",
         "pci_passthrough.demo.run", "libvirt", "lxml", "oslo_log.log",
         "oslo_privsep", "pci_passthrough.privsep"}

SCAN_KEYS = ["address", "dev_type", "vendor_id", "product_id",
             "parent_addr", "vf_index", "numa_node", "driver", "netdev",
             "mac", "iommu_group", "assignable", "tags"]


@pytest.fixture
def host(make_sysfs_tree):
    return make_sysfs_tree(st.HostLayout((
        st.PfLayout("intel-82599", "0000:04:00.0", numvfs=2,
                    vf_drivers={1: "vfio-pci"}, netdev="ens1f0",
                    numa_node=None),
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1),
    ))).root


def write_conf(tmp_path, *lines):
    return str(write_section(tmp_path / "pci.conf", *lines))


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
    assert len(steps) == 11
    assert "discovery on host A" in out
    assert "carries the special attribute group=grp1" in out
    assert "function 8 is over its maximum 7" in out
    assert "same names on both hosts, each holding its own VF" in out
    assert "refused before migrating" in out
    assert "doctor on host B: 1 finding(s), 1 left" in out
    assert "[found] drifted-network" in out
    assert "holds eth0 instead of" in out
    assert "doctor --fix on host B: 1 finding(s), 0 left" in out
    assert "doctor on host B: 0 finding(s), 0 left" in out
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


def loaded_modules(tmp_path, *args):
    listing = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(listing),
                           *args], capture_output=True, text=True)
    return proc, set(json.loads(listing.read_text()))


def test_help_lists_every_command_and_loads_none(tmp_path):
    proc, loaded = loaded_modules(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for name, (_module, help_text) in main.COMMANDS.items():
        assert re.search(rf"^    {name} +{re.escape(help_text[:20])}",
                         proc.stdout, re.M), name
    assert "--debug" in proc.stdout and "--log-file" in proc.stdout
    assert not loaded & (HEAVY | {"pci_passthrough.cli.scan",
                                  "pci_passthrough.discovery.sysfs_scan"})


def test_scan_loads_what_it_needs_only(tmp_path, host):
    proc, loaded = loaded_modules(tmp_path, "scan", "--sysfs-root",
                                  str(host), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["devices"]) == 5
    assert {"pci_passthrough.cli.scan",
            "pci_passthrough.discovery.sysfs_scan"} <= loaded
    assert not loaded & HEAVY


def test_debug_sets_oslo_log_up(tmp_path, host):
    proc, loaded = loaded_modules(tmp_path, "--debug", "scan",
                                  "--sysfs-root", str(host))
    assert proc.returncode == 0, proc.stderr
    assert "oslo_log.log" in loaded
    assert re.search(
        r" DEBUG pci_passthrough\.discovery\.sysfs_scan \[-\] Scanned ",
        proc.stderr)


def declared_commands(module_name):
    """(name, help) of every parser the module declares, in order."""
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    module = importlib.import_module(module_name)
    module.add_parsers(subparsers)
    return [(action.dest, action.help)
            for action in subparsers._choices_actions]


def test_command_table_is_what_the_modules_declare():
    declared = []
    for module_name in dict.fromkeys(m for m, _ in main.COMMANDS.values()):
        declared += [(name, module_name, help_text) for name, help_text
                     in declared_commands(module_name)]
    assert declared == [(name, module_name, help_text) for name,
                        (module_name, help_text) in main.COMMANDS.items()]


@pytest.mark.parametrize("command", sorted(main.COMMANDS))
def test_each_command_gets_its_own_options(command, capsys):
    with pytest.raises(SystemExit) as done:
        main.main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pci-passthrough {command} ")
    assert {"demo": "--workdir", "placement": "ACTION",
            "metrics": "--output"}.get(
        command, "--format") in out


def test_an_option_value_that_names_a_command(host, capsys):
    # "claims" is the value of --log-date-format here, not the command:
    # its module loads for nothing, and scan still runs.
    assert main.main(["--log-date-format", "claims", "scan",
                      "--sysfs-root", str(host), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["devices"]) == 5


def test_logging_options_are_oslo_logs():
    from oslo_log import log

    ours, theirs = cfg.ConfigOpts(), cfg.ConfigOpts()
    log_setup.register_options(ours)
    log.register_options(theirs)
    assert sorted(ours) == sorted(theirs)
    # oslo.config keeps no public list of command-line options.
    assert sorted(o["opt"].dest for o in ours._cli_opts) == sorted(
        o["opt"].dest for o in theirs._cli_opts)


def parsed(tmp_path, *args, config=None):
    conf = cfg.ConfigOpts()
    log_setup.register_options(conf)
    files = []
    if config is not None:
        path = tmp_path / "log.conf"
        path.write_text("[DEFAULT]\n" + config + "\n")
        files = ["--config-file", str(path)]
    conf([*files, *args], default_config_files=[], default_config_dirs=[])
    return conf


@pytest.mark.parametrize("args,config,expected", [
    ((), None, False),
    (("--log-date-format", "%Y-%m-%d %H:%M:%S"), None, False),
    (("--debug",), None, True),
    (("--log-file", "/tmp/x.log"), None, True),
    (("--use-json",), None, True),
    ((), "instance_format = [i: %(uuid)s]", True),
    ((), "use_stderr = false", True),
    ((), "default_log_levels = stevedore=DEBUG", True),
])
def test_oslo_log_is_set_up_when_an_option_asks(tmp_path, args, config,
                                                expected):
    conf = parsed(tmp_path, *args, config=config)
    assert log_setup.needs_oslo_log(conf) is expected


def test_plain_logging_formats_lines_as_oslo_log(tmp_path):
    from oslo_log import formatters

    conf = parsed(tmp_path)
    record = logging.LogRecord("pci_passthrough.discovery.sysfs_scan",
                               logging.WARNING, __file__, 1,
                               "Skipping SR-IOV device at %s: %s",
                               ("/sys/x", "gone"), None)
    oslo = formatters.ContextFormatter(
        project="pci_passthrough", version="unknown",
        datefmt=conf.log_date_format, config=conf)
    expected = oslo.format(logging.makeLogRecord(record.__dict__))
    assert log_setup.plain_formatter(conf).format(record) == expected
    assert (" WARNING pci_passthrough.discovery.sysfs_scan [-] Skipping "
            in expected)


def test_default_logging_reports_a_skipped_device_on_stderr(tmp_path,
                                                            host):
    st.vanish(st.BuiltTree(host, {"0000:5e:01.0": st.BuiltDevice(
        "0000:5e:01.0", next(host.glob("devices/**/0000:5e:01.0")),
        None)}), "0000:5e:01.0")
    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", "scan",
         "--sysfs-root", str(host), "--format", "json"],
        capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["errors"]
    (line,) = proc.stderr.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ WARNING "
        r"pci_passthrough\.discovery\.sysfs_scan \[-\] sysfs .*0000:5e:01\.0.*"
        r"vanished.*", line)


def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}"
                         for alias in node.names)
    return names


def test_runtime_modules_import_no_test_fixture():
    # The demo shows the library on simulated hosts: it alone may build
    # them. Nothing in the package may reach the functional tests' host
    # fixture (tests/functional/libvirt_hosts.py).
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "fixtures" in path.parents:
            continue
        allowed = PACKAGE / "demo" in path.parents
        names = imported_modules(path)
        if any(n.startswith(("libvirt_hosts", "tests")) for n in names) \
                or (not allowed and any(
                    n.startswith("pci_passthrough.fixtures")
                    for n in names)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []
    assert not (PACKAGE / "fixtures" / "libvirt_hosts.py").exists()


def test_package_exports_load_on_first_use():
    from pci_passthrough import agent
    from pci_passthrough.model import claims
    assert pci_passthrough.HostAgent is agent.HostAgent
    assert pci_passthrough.PortRequest is claims.PortRequest
    assert set(pci_passthrough.__all__) <= set(dir(pci_passthrough))
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        pci_passthrough.Nothing  # noqa: B018
