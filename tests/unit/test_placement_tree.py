"""The provider tree: a pure translation of devices and device_spec."""

import json

import pytest

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import placement_names as names
from pci_passthrough.placement.tree import build_tree, consumer_units

I1, I2 = ("11111111-1111-4111-8111-111111111111",
          "22222222-2222-4222-8222-222222222222")


def tree_for(tmp_path, layout, spec_values, special=("group",),
             nodename="cmp1"):
    root = tmp_path / "sys"
    st.build_tree(root, layout)
    scan = sysfs_scan.scan(str(root))
    specs = devspec.parse_device_specs(spec_values)
    return build_tree(nodename, scan.devices, specs, special)


def test_demo_host_gives_one_provider_per_pf(tmp_path) -> None:
    tree = tree_for(tmp_path, demo_hosts.DEMO_HOST_A,
                    demo_hosts.DEMO_DEVICE_SPECS)
    x710, cx6 = tree.providers
    assert (x710.name, x710.resource_class, x710.total) == (
        "cmp1_0000:3B:00.0_pcipt", "CUSTOM_PCI_8086_154C", 4)
    assert (cx6.name, cx6.resource_class, cx6.total) == (
        "cmp1_0000:5E:00.0_pcipt", "CUSTOM_PCI_15B3_101E", 3)
    # Formerly Nova's names, which Nova gives its own PCI providers.
    assert (x710.former_name, cx6.former_name) == (
        "cmp1_0000:3B:00.0", "cmp1_0000:5E:00.0")
    for p in tree.providers:
        assert names.OWNER_TRAIT in p.traits
        # Nova takes a provider with its trait for its own.
        assert names.NOVA_PCI_TRAIT not in p.traits
        assert p.inventory()[p.resource_class]["max_unit"] == p.total
    assert "CUSTOM_PHYSNET_PHYSNET1" in x710.traits
    # Only the grouped provider carries the group's marker and value.
    marker = names.marker_trait("group")
    assert marker in cx6.traits and marker not in x710.traits
    assert names.value_trait("group", "grp1") in cx6.traits


def test_resource_class_and_traits_tags(tmp_path) -> None:
    tree = tree_for(tmp_path, st.HostLayout((
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=2),)), [
        json.dumps({"address": "0000:5e:00.0",
                    "resource_class": "nic-fast",
                    "traits": "hw_nic_sriov,blue"})])
    (p,) = tree.providers
    assert p.resource_class == "CUSTOM_NIC_FAST"
    assert {"HW_NIC_SRIOV", "CUSTOM_BLUE"} <= p.traits


def test_vfs_with_different_tags_split_into_named_providers(
        tmp_path) -> None:
    layout = st.HostLayout((
        st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=3),))
    specs = [json.dumps({"address": "0000:3b:02.0", "group": "g1"}),
             json.dumps({"address": "0000:3b:00.0"})]
    tree = tree_for(tmp_path, layout, specs)
    grouped, plain = sorted(tree.providers, key=lambda p: p.total)
    assert grouped.vfs == ("0000:3b:02.0",)
    assert plain.vfs == ("0000:3b:02.1", "0000:3b:02.2")
    assert {p.name[:len("cmp1_0000:3B:00.0_pcipt_")]
            for p in tree.providers} == {"cmp1_0000:3B:00.0_pcipt_"}
    assert grouped.name != plain.name
    # The names earlier releases gave them, whose suffix hashed Nova's
    # trait too: providers found under them are renamed.
    assert (grouped.former_name, plain.former_name) == (
        "cmp1_0000:3B:00.0_CDC362BF", "cmp1_0000:3B:00.0_D4E109FE")
    # Deterministic: the same configuration names them the same.
    again = tree_for(tmp_path / "again", layout, specs)
    assert again == tree


def test_pf_without_assignable_vfs_gets_no_provider(tmp_path) -> None:
    tree = tree_for(tmp_path, st.HostLayout((
        st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=2),
        st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=2),)),
        [json.dumps({"address": "0000:5e:00.0"})])
    assert [p.pf_address for p in tree.providers] == ["0000:5e:00.0"]


@pytest.mark.parametrize(("tag", "value"), [
    ("resource_class", "-"), ("traits", "a," + "b" * 260),
    ("physical_network", "p" * 260),
    # Nova's marks of its own providers.
    ("traits", "blue,compute_managed_pci_device"),
    ("traits", "OWNER_NOVA")])
def test_invalid_placement_name_names_the_spec(tmp_path, tag,
                                               value) -> None:
    spec = json.dumps({"address": "0000:5e:00.0", tag: value})
    with pytest.raises(exception.InvalidDeviceSpec) as err:
        tree_for(tmp_path, st.HostLayout((
            st.PfLayout("intel-e810", "0000:5e:00.0", numvfs=1),)),
            ['{"vendor_id": "15b3"}', spec])
    text = str(err.value)
    # Values past the configuration's own bounds are refused while the
    # entry is parsed ("entry #2"), the others by the translation.
    assert "device_spec" in text and tag in text
    assert "spec #2" in text or "entry #2" in text


def test_consumer_units_from_ledger(tmp_path) -> None:
    tree = tree_for(tmp_path, demo_hosts.DEMO_HOST_A,
                    demo_hosts.DEMO_DEVICE_SPECS)

    def rec(instance, port, address):
        return LedgerRecord(instance, port, address, "claimed", None,
                            "{}", None)

    units, unmapped = consumer_units(tree, [
        rec(I1, 0, "0000:3b:02.0"), rec(I1, 1, "0000:3b:02.1"),
        rec(I1, 2, "0000:5e:00.2"), rec(I2, 0, "0000:99:00.1")])
    assert units == {I1: {"cmp1_0000:3B:00.0_pcipt": 2,
                          "cmp1_0000:5E:00.0_pcipt": 1}}
    assert [r.address for r in unmapped] == ["0000:99:00.1"]
