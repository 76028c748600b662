"""The option physnet_flavors: read from nova-compute's file, each
flavor one the option flavor defines, every malformed value one error
naming the option and the entry; and PortPolicy built from it."""

import pytest
from conf_files import write_section
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import opts, settings
from pci_passthrough.nova.ports import PortPolicy

FLAVORS = ('flavor = {"name": "net1", "physical_network": "physnet1"}',
           'flavor = {"name": "grp1", "group": "grp1"}')
SPECS = ('device_spec = {"vendor_id": "8086", '
         '"physical_network": "physnet1", "group": "grp1"}',)


def load(tmp_path, *lines):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    path = write_section(tmp_path / "nova.conf", *SPECS, *FLAVORS, *lines)
    settings.parse_command_line(conf, ["--config-file", str(path)],
                                default_config_files=[],
                                default_config_dirs=[])
    return conf


def test_by_default_no_physical_network_names_a_flavor(tmp_path):
    assert settings.load_settings(load(tmp_path)).physnet_flavors == {}


def test_pairs_map_physical_networks_to_flavors(tmp_path):
    conf = load(tmp_path, "physnet_flavors = physnet1:net1, physnet2:grp1")
    assert dict(settings.load_settings(conf).physnet_flavors) == {
        "physnet1": "net1", "physnet2": "grp1"}
    policy = PortPolicy.from_conf(conf)
    assert dict(policy.physnet_flavors) == {"physnet1": "net1",
                                            "physnet2": "grp1"}
    assert set(policy.flavors.flavors) == {"net1", "grp1"}


@pytest.mark.parametrize("value,why", [
    ("physnet1:gold", "'physnet1:gold' for option [pci_passthrough] "
                      "physnet_flavors: expected a flavor the option "
                      "flavor defines after ':' (known: grp1, net1)"),
    ("physnet1:", "expected a flavor the option flavor defines"),
    (":net1", "physnet_flavors: Key name should not be empty"),
    ("physnet1", "physnet_flavors"),
    ("physnet1:net1:x", "physnet_flavors"),
])
def test_a_malformed_entry_is_one_error_naming_it(tmp_path, value, why):
    conf = load(tmp_path, f"physnet_flavors = {value}")
    with pytest.raises(exception.ConfigError) as err:
        settings.load_settings(conf)
    text = str(err.value)
    assert why in text and "\n" not in text
    with pytest.raises(exception.ConfigError):
        PortPolicy.from_conf(conf)
