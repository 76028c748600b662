"""The option group, its entry point and the committed sample file."""

import pathlib
import subprocess
import sys

import pytest
from oslo_config import cfg
from stevedore import driver

from pci_passthrough.config import opts

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "etc" / "pci_passthrough.conf.sample"


def test_register_opts_on_separate_confs_do_not_share_state() -> None:
    a, b = cfg.ConfigOpts(), cfg.ConfigOpts()
    opts.register_opts(a)
    opts.register_opts(b)
    a([])
    b([])
    a.set_override("sysfs_root", "/tmp/a", group="pci_passthrough")
    assert a.pci_passthrough.sysfs_root == "/tmp/a"
    assert b.pci_passthrough.sysfs_root == "/sys"
    assert b.pci_passthrough.special_attributes == ["group"]


def test_a_fork_registers_the_options_as_the_readme_says() -> None:
    # README, "Using it from a nova-compute fork": the public path.
    from pci_passthrough import opts as public

    conf = cfg.ConfigOpts()
    public.register_opts(conf)
    conf([])
    assert conf.pci_passthrough.network_driver == "libvirt_macvtap"
    assert public.list_opts is opts.list_opts
    assert public.set_defaults is opts.set_defaults


def test_set_defaults_changes_only_the_given_options() -> None:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    opts.set_defaults(conf, state_path="/srv/claims.db")
    conf([])
    assert conf.pci_passthrough.state_path == "/srv/claims.db"
    assert conf.pci_passthrough.network_name_prefix == "pcipt-"


def test_list_opts_is_the_oslo_config_entry_point() -> None:
    mgr = driver.DriverManager("oslo.config.opts", "pci_passthrough")
    groups = mgr.driver()
    assert [g.name for g, _ in groups] == ["pci_passthrough",
                                           "pci_passthrough_privileged"]
    names = {o.name for _, group_opts in groups[:1] for o in group_opts}
    assert {"sysfs_root", "device_spec", "flavor", "special_attributes",
            "state_path", "network_driver", "network_name_prefix",
            "netdev_writes"} <= names
    # The privsep context's group lists oslo.privsep's own options.
    assert {o.name for o in groups[1][1]} >= {"helper_command",
                                              "capabilities", "user"}


def test_bad_prefix_is_refused_naming_the_option(tmp_path) -> None:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf_file = tmp_path / "bad.conf"
    conf_file.write_text("[pci_passthrough]\nnetwork_name_prefix = a/b\n")
    conf(["--config-file", str(conf_file)])
    with pytest.raises(ValueError, match="network_name_prefix"):
        conf.pci_passthrough.network_name_prefix  # noqa: B018


def test_committed_sample_is_current(tmp_path) -> None:
    generated = tmp_path / "sample.conf"
    subprocess.run(
        [sys.executable, "-m", "oslo_config.generator",
         "--config-file",
         str(ROOT / "etc" / "oslo-config-generator" /
             "pci_passthrough.conf"),
         "--output-file", str(generated)],
        check=True, cwd=ROOT)
    assert SAMPLE.read_text() == generated.read_text(), (
        "etc/pci_passthrough.conf.sample is stale: run tox -e genconfig")
