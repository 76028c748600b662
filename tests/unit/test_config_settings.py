"""load_settings: every [pci_passthrough] option validated in one place,
oslo.config's errors wrapped, and the agent and the command line refusing
the same configurations with the same message."""

import dataclasses
import json
import uuid

import libvirt
import pytest
from conf_files import write_section
from config_strategies import profile
from hypothesis import example, given
from hypothesis import strategies as st
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.cli import main
from pci_passthrough.config import opts, settings
from pci_passthrough.fixtures import sysfs_tree as sysfs
from pci_passthrough.network import netxml
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver
from pci_passthrough.tracker import HostTracker

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"


def parsed(path=None, *extra_opts: cfg.Opt) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    if extra_opts:
        conf.register_opts(list(extra_opts), group="pci_passthrough")
    args = ["--config-file", str(path)] if path else []
    settings.parse_command_line(conf, args, default_config_files=[],
                                default_config_dirs=[])
    return conf


def conf_file(tmp_path, *lines: str):
    return write_section(tmp_path / "pci.conf", *lines)


def one_line(err: BaseException, option: str) -> str:
    text = str(err)
    assert isinstance(err, exception.ConfigError)
    assert f"[pci_passthrough] {option}" in text, text
    assert "\n" not in text and text.isprintable(), text
    return text


def test_defaults_load_into_a_frozen_typed_object():
    got = settings.load_settings(parsed())
    assert (got.sysfs_root, got.state_path, got.network_driver,
            got.network_name_prefix, got.libvirt_uri, got.macvtap_mode) == (
        "/sys", "/var/lib/pci_passthrough/claims.sqlite3",
        "libvirt_macvtap", "pcipt-", "qemu:///system", "passthrough")
    assert len(got.device_specs) == 0 and dict(got.flavors.flavors) == {}
    assert got.special_attributes == {"group"}
    assert dict(got.driver_options) == {}
    assert got.incoming_migration_timeout == 1800
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.sysfs_root = "/x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        got.driver_options["x"] = 1  # type: ignore[index]


def test_a_full_configuration_is_parsed_once(tmp_path):
    path = conf_file(
        tmp_path, "sysfs_root = /srv/sys", "state_path = /srv/claims.db",
        'device_spec = {"vendor_id": "8086", "group": "grp1"}',
        'device_spec = [{"devname": "ens1f0", "physical_network": "p1"}]',
        'flavor = {"name": "grp1", "group": "grp1"}',
        'flavor = {"name": "net1", "physical_network": "p1"}',
        "special_attributes = group, physical_network",
        "network_name_prefix = os-vf.1_", "macvtap_mode = vepa",
        "libvirt_uri = test:///default")
    got = settings.load_settings(parsed(path))
    assert len(got.device_specs) == 2
    assert sorted(got.flavors.flavors) == ["grp1", "net1"]
    assert got.special_attributes == {"group", "physical_network"}
    assert (got.sysfs_root, got.state_path, got.network_name_prefix,
            got.macvtap_mode, got.libvirt_uri) == (
        "/srv/sys", "/srv/claims.db", "os-vf.1_", "vepa", "test:///default")


# Every option, through a real file and oslo.config's own parsing.
@pytest.mark.parametrize("lines,option,reason", [
    (["network_name_prefix = a/b"], "network_name_prefix",
     "expected 1 to 24 ASCII letters"),
    (["network_name_prefix = -x"], "network_name_prefix",
     "starting with a letter or digit"),
    (["network_name_prefix = .x"], "network_name_prefix", "expected"),
    (["network_name_prefix = _x"], "network_name_prefix", "expected"),
    (["network_name_prefix ="], "network_name_prefix", "expected"),
    (["network_name_prefix = " + "x" * 25], "network_name_prefix",
     "expected 1 to 24"),
    (["network_name_prefix = a b"], "network_name_prefix", "expected"),
    (["network_name_prefix = caf\u00e9"], "network_name_prefix",
     "expected"),
    (["network_name_prefix = a:b"], "network_name_prefix", "expected"),
    (["macvtap_mode = bogus"], "macvtap_mode",
     "Valid values are [passthrough, bridge, private, vepa]"),
    (["macvtap_mode ="], "macvtap_mode", "Valid values are"),
    (["macvtap_mode = Passthrough"], "macvtap_mode", "Valid values are"),
    (["macvtap_mode = passthru"], "macvtap_mode", "Valid values are"),
    (["sysfs_root ="], "sysfs_root", "expected a path of 1 to 4095"),
    (["sysfs_root = $nope"], "sysfs_root", "a '$' starts a reference"),
    (["sysfs_root = ${pci_passthrough.nope}"], "sysfs_root",
     "a '$' starts a reference"),
    (["sysfs_root = /a/$DEFAULT.nope"], "sysfs_root",
     "a '$' starts a reference"),
    (["state_path ="], "state_path", "expected a path"),
    (["state_path = $state_path"], "state_path", "form a loop"),
    (["sysfs_root = $state_path", "state_path = $sysfs_root"],
     "state_path", "form a loop"),
    (["state_path = /" + "x" * 5000], "state_path", "1 to 4095"),
    (["network_driver ="], "network_driver",
     "expected the name of an installed network driver"),
    (["network_driver = a b"], "network_driver", "expected the name"),
    (["network_driver = ../x"], "network_driver", "expected the name"),
    (["network_driver = caf\u00e9"], "network_driver", "expected the name"),
    (["libvirt_uri ="], "libvirt_uri", "expected a libvirt connection"),
    (["libvirt_uri = qemu:///system x"], "libvirt_uri", "expected"),
    (["special_attributes = address"], "special_attributes",
     "address has a fixed meaning in matching"),
    (["special_attributes = group, vendor_id"], "special_attributes",
     "#2 'vendor_id'"),
    (["special_attributes = numa_policy"], "special_attributes",
     "fixed meaning"),
    (["special_attributes = a b"], "special_attributes",
     "is not a tag name"),
    (["special_attributes = group,,x"], "special_attributes",
     "#2 ''"),
    (['device_spec = {"vendor_id": NaN}'], "device_spec",
     "NaN is not a number"),
    (['device_spec = {"a": 1, "a": 2}'], "device_spec", "appears twice"),
    (['device_spec = {"name": "x"}'], "device_spec", "'name' is reserved"),
    (['flavor = {"name": "a,b"}'], "flavor", "cannot be used"),
    (['flavor = {"name": "-a"}'], "flavor", "cannot be used"),
])
def test_every_option_is_one_clear_error(tmp_path, lines, option, reason):
    conf = parsed(conf_file(tmp_path, *lines))
    with pytest.raises(exception.ConfigError) as err:
        settings.load_settings(conf)
    text = one_line(err.value, option)
    assert reason in text, text


def test_an_oslo_value_error_names_the_file(tmp_path):
    path = conf_file(tmp_path, "macvtap_mode = bogus")
    with pytest.raises(exception.InvalidOption) as err:
        settings.load_settings(parsed(path))
    assert str(err.value).startswith(
        f"Invalid value in {path} for option [pci_passthrough] "
        f"macvtap_mode: ")


def test_values_set_by_the_host_service_are_checked_too():
    conf = parsed()
    for option, value, error in [
            ("sysfs_root", "", exception.InvalidOption),
            ("sysfs_root", "/sys\x1b[2J", exception.InvalidOption),
            ("state_path", "/a\x00b", exception.InvalidOption),
            ("special_attributes", ["address"], exception.InvalidOption),
            ("device_spec", "notalist", exception.InvalidDeviceSpec),
            ("flavor", ['{"name": " x"}'], exception.InvalidFlavor)]:
        conf.set_override(option, value, group="pci_passthrough")
        with pytest.raises(error) as err:
            settings.load_settings(conf)
        one_line(err.value, option)
        conf.clear_override(option, group="pci_passthrough")
    settings.load_settings(conf)


def test_other_drivers_options_are_read_and_wrapped(tmp_path):
    extra = cfg.IntOpt("queue_depth", default=4, min=1)
    conf = parsed(None, extra)
    assert settings.load_settings(conf).driver_options == {"queue_depth": 4}
    conf = parsed(conf_file(tmp_path, "queue_depth = many"), extra)
    with pytest.raises(exception.InvalidOption) as err:
        settings.load_settings(conf)
    assert "queue_depth" in one_line(err.value, "queue_depth")


def test_unregistered_options_are_a_clear_error():
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(exception.InvalidOption, match="register_opts"):
        settings.load_settings(conf)


# -- network_name_prefix and macvtap_mode: one rule each -------------------

def test_the_longest_prefix_leaves_a_valid_libvirt_name():
    assert (opts.NETWORK_NAME_PREFIX_MAX + opts.NETWORK_NAME_SUFFIX_MAX
            <= opts.LIBVIRT_NETWORK_NAME_MAX)
    prefix = "p" * opts.NETWORK_NAME_PREFIX_MAX
    assert settings.check_network_name_prefix(prefix) == prefix
    name = f"{prefix}{uuid.uuid4()}-9999"
    assert len(name) == (opts.NETWORK_NAME_PREFIX_MAX
                         + opts.NETWORK_NAME_SUFFIX_MAX)
    # libvirt's own test driver defines it.
    conn = libvirt.open("test:///default")
    try:
        net = conn.networkDefineXML(netxml.network_xml(
            NetworkSpec(name, "eth0", None), "passthrough"))
        assert net.name() == name
        net.undefine()
    finally:
        conn.close()


@pytest.mark.parametrize("prefix", ["pcipt-", "d", "os.vf_1-", "0",
                                    "A" * 24])
def test_accepted_prefixes(prefix):
    # 'd' may look like libvirt's "default": reconcile parses whole names.
    assert settings.check_network_name_prefix(prefix) == prefix


@profile(300)
@given(st.text(max_size=30))
@example("pcipt-\n")
@example("x\n\n")
def test_any_prefix_is_accepted_only_if_oslo_and_settings_agree(value):
    try:
        settings.check_network_name_prefix(value)
        ok = True
    except exception.InvalidOption as err:
        one_line(err, "network_name_prefix")
        ok = False
    conf = parsed()
    try:
        conf.set_override("network_name_prefix", value,
                          group="pci_passthrough")
        oslo_ok = True
    except ValueError:
        oslo_ok = False
    assert ok == oslo_ok
    assert not ok or settings.load_settings(
        conf).network_name_prefix == value


def test_macvtap_modes_are_the_drivers_own():
    (mode_opt,) = [o for o in LibvirtMacvtapDriver.CONFIG_OPTS
                   if o.name == "macvtap_mode"]
    assert tuple(mode_opt.type.choices) == opts.MACVTAP_MODES
    for mode in opts.MACVTAP_MODES:
        assert settings.check_macvtap_mode(mode) == mode
    for bad in ("", "PASSTHROUGH", "bridge ", None, 1):
        with pytest.raises(exception.InvalidOption) as err:
            settings.check_macvtap_mode(bad)
        assert "one of passthrough, bridge, private, vepa" in one_line(
            err.value, "macvtap_mode")


# -- the agent and the command line refuse alike -------------------------

@pytest.fixture
def host(tmp_path):
    root = tmp_path / "sys"
    sysfs.build_tree(root, sysfs.HostLayout((
        sysfs.PfLayout("intel-x710", "0000:3b:00.0", numvfs=3,
                       netdev="ens1f0"),)))
    return root


BAD_LINES = [
    ["macvtap_mode = bogus"],
    ["network_name_prefix = a/b"],
    ["network_name_prefix = -pcipt"],
    ["special_attributes = address"],
    ["special_attributes = group,vendor_id"],
    ['flavor = {"name": "net1,net2"}'],
    ['flavor = {"name": "net1", "numa_node": "\u00b2"}'],
    ['device_spec = {"vendor_id": "8086", "group": NaN}'],
    ['device_spec = {"devname": "ens1f0:"}'],
    ['device_spec = {"vendor_id": "8086", "numa_node": "1"}'],
    ['device_spec = {"address": {"bus": "(?:(?:3?){15}){99}"}}'],
    ["state_path = $sysfs_root/../claims.db", "sysfs_root = $state_path"],
    ["libvirt_uri = qemu:///system?x y"],
    ["sysfs_root ="],
]


@pytest.mark.parametrize("lines", BAD_LINES)
def test_agent_and_cli_refuse_with_the_same_message(tmp_path, host, lines,
                                                    capsys):
    ledger = tmp_path / "state" / "claims.db"
    path = conf_file(tmp_path, f"sysfs_root = {host}",
                     f"state_path = {ledger}",
                     'device_spec = {"vendor_id": "8086"}', *lines)
    with pytest.raises(exception.ConfigError) as err:
        HostAgent(parsed(path))
    # scan reads no network driver option, so it checks none.
    driver_option = lines[0].split()[0] in ("macvtap_mode", "libvirt_uri")
    for command in ([] if driver_option else [["scan"]]) + [
            ["explain", "net1"], ["claims"], ["claim", INST, "net1"],
            ["free", INST]]:
        assert main.main(["--config-file", str(path), *command]) == 1
        assert capsys.readouterr().err == (
            f"pci-passthrough: error: {err.value}\n")
    with pytest.raises(exception.ConfigError):
        HostTracker.from_conf(parsed(path))
    assert not ledger.parent.exists()


def test_special_address_no_longer_lets_claim_and_explain_disagree(
        tmp_path, host, capsys):
    # Special "address": pools leave the address to their members, so a
    # claim used to succeed while explain said "carries the special
    # attribute address". The configuration is now refused.
    ledger = tmp_path / "claims.db"
    path = conf_file(tmp_path, f"sysfs_root = {host}",
                     f"state_path = {ledger}",
                     'device_spec = {"vendor_id": "8086"}',
                     'flavor = {"name": "net1", "vendor_id": "8086"}',
                     "special_attributes = group,address")
    assert main.main(["--config-file", str(path), "claim", INST,
                      "net1"]) == 1
    assert main.main(["--config-file", str(path), "explain", "net1"]) == 1
    err = capsys.readouterr().err
    assert err.count("[pci_passthrough] special_attributes") == 2
    assert not ledger.exists()


def test_a_valid_configuration_still_works_end_to_end(tmp_path, host,
                                                      capsys):
    path = conf_file(tmp_path, f"sysfs_root = {host}",
                     f"state_path = {tmp_path / 'claims.db'}",
                     'device_spec = {"vendor_id": "8086", "group": "g"}',
                     'flavor = {"name": "g.1", "group": "g"}',
                     "network_name_prefix = d")
    assert main.main(["--config-file", str(path), "claim", INST, "g.1",
                      "--format", "json"]) == 0
    allocs = json.loads(capsys.readouterr().out)["allocations"]
    assert [a["flavor"] for a in allocs] == ["g.1"]
