"""The [placement] group, registered with keystoneauth1's loading
helpers as nova registers its own, and [pci_passthrough] nodename."""

import socket

from conf_files import write_placement_conf
from oslo_config import cfg
from stevedore import driver

from pci_passthrough.config import opts
from pci_passthrough.placement import conf as placement_conf


def test_placement_group_has_keystoneauth_options(tmp_path) -> None:
    conf = cfg.ConfigOpts()
    placement_conf.register_placement_opts(conf)
    placement_conf.register_placement_opts(conf)  # idempotent
    path = write_placement_conf(tmp_path / "p.conf", 1, timeout=7)
    conf(["--config-file", str(path)], default_config_files=[])
    assert conf.placement.service_type == "placement"
    assert conf.placement.valid_interfaces == ["internal", "public"]
    assert conf.placement.timeout == 7
    assert conf.placement.auth_type == "admin_token"
    from keystoneauth1 import loading as ks_loading

    auth = ks_loading.load_auth_from_conf_options(conf, "placement")
    assert auth.get_endpoint(None) == "http://127.0.0.1:1"


def test_generator_entry_point_lists_the_placement_group() -> None:
    mgr = driver.DriverManager("oslo.config.opts",
                               "pci_passthrough.placement")
    ((group, options),) = mgr.driver()
    names = {o.dest for o in options}
    assert group.name == "placement"
    assert {"auth_type", "timeout", "service_type", "valid_interfaces",
            "endpoint", "token", "auth_url", "password"} <= names


def test_nodename_defaults_to_the_host_name() -> None:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    assert placement_conf.nodename(conf) == socket.gethostname()
    conf.set_override("nodename", "cmp7", group="pci_passthrough")
    assert placement_conf.nodename(conf) == "cmp7"
