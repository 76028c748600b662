"""Placement names: Nova's classes and traits, Neutron's physnet trait,
and the value traits that carry attributes exactly."""

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from pci_passthrough.model import placement_names as names

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "60"))
VALID = re.compile(r"[A-Z0-9_]{1,255}\Z")


@pytest.mark.parametrize(("tag", "expected"), [
    ("nic-fast", "CUSTOM_NIC_FAST"),
    ("CUSTOM_NIC_SLOW", "CUSTOM_NIC_SLOW"),
    ("custom_nic", "CUSTOM_NIC"),
    ("SRIOV_NET_VF", "SRIOV_NET_VF"),  # standard: kept
    ("pci_device", "PCI_DEVICE"),
])
def test_resource_class_follows_nova(tag, expected) -> None:
    assert names.resource_class(tag) == expected


@pytest.mark.parametrize("tag", ["", "-", "x" * 300])
def test_resource_class_that_cannot_be_a_name_is_refused(tag) -> None:
    with pytest.raises(ValueError, match="resource_class"):
        names.resource_class(tag)


def test_default_class_is_novas() -> None:
    assert names.default_resource_class("8086", "154c") == \
        "CUSTOM_PCI_8086_154C"


def test_traits_tag_keeps_standard_names_and_normalises_others() -> None:
    assert names.traits_tag("hw_nic_sriov, fast ,CUSTOM_BLUE,,") == {
        "HW_NIC_SRIOV", "CUSTOM_FAST", "CUSTOM_BLUE"}
    with pytest.raises(ValueError, match="trait"):
        names.traits_tag("ok," + "y" * 260)


def test_physnet_trait_is_neutrons() -> None:
    assert names.physnet_trait("phys-net.2") == "CUSTOM_PHYSNET_PHYS_NET_2"
    assert names.physnet_trait("physnet1") == "CUSTOM_PHYSNET_PHYSNET1"


def test_value_traits_tell_apart_values_that_normalise_alike() -> None:
    a = names.value_trait("physical_network", "phys-net.2")
    b = names.value_trait("physical_network", "phys_net_2")
    assert a != b
    assert a.startswith("CUSTOM_PCIPT_PHYSICAL_NETWORK_PHYS_NET_2_")
    # The matcher compares values case-insensitively: so do the traits.
    assert names.value_trait("group", "GRP1") == \
        names.value_trait("group", "grp1")
    assert names.value_trait("group", "grp1") != \
        names.value_trait("groups", "grp1")
    assert names.marker_trait("group") != names.marker_trait("Group")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(key=hst.text(min_size=1, max_size=300),
       value=hst.text(max_size=400),
       other=hst.text(max_size=400))
def test_any_value_gives_a_valid_distinct_trait(key, value, other) -> None:
    trait = names.value_trait(key, value)
    assert VALID.match(trait) and trait.startswith("CUSTOM_")
    assert VALID.match(names.marker_trait(key))
    if value.lower() != other.lower():
        assert names.value_trait(key, other) != trait


def test_provider_names_carry_the_mark_and_are_bounded() -> None:
    assert names.provider_name("cmp1", "0000:3b:00.0") == \
        "cmp1_0000:3B:00.0_pcipt"
    split = names.provider_name("cmp1", "0000:3b:00.0", "A B")
    assert split.startswith("cmp1_0000:3B:00.0_pcipt_") and len(split) == 32
    assert split == names.provider_name("cmp1", "0000:3b:00.0", "A B")
    assert names.provider_name("n" * 172, "0000:3b:00.0", "A B")
    with pytest.raises(ValueError, match="shorter nodename"):
        names.provider_name("n" * 173, "0000:3b:00.0", "A B")


def test_former_names_are_novas_pattern() -> None:
    assert names.former_provider_name("cmp1", "0000:3b:00.0") == \
        "cmp1_0000:3B:00.0"
    split = names.former_provider_name("cmp1", "0000:3b:00.0", "A B")
    assert split == "cmp1_0000:3B:00.0_" + \
        names.provider_name("cmp1", "0000:3b:00.0", "A B")[-8:]


#: How Nova names a PCI provider (pci_placement_translator.PlacementView).
NOVA_NAME = re.compile(
    r".*_[0-9A-F]{4}:[0-9A-F]{2}:[0-9A-F]{2}\.[0-7]\Z", re.DOTALL)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(nodename=hst.text(min_size=1, max_size=60),
       address=hst.from_regex(
           r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]", fullmatch=True),
       variant=hst.none() | hst.text(max_size=40))
def test_no_name_of_ours_is_ever_novas(nodename, address, variant) -> None:
    """Nova's PCI providers are ``<hypervisor hostname>_<ADDRESS>``: ours
    never end with an address, whatever the names of the hosts."""
    assert not NOVA_NAME.match(names.provider_name(nodename, address,
                                                   variant))


def test_novas_own_traits_are_no_tag_of_ours() -> None:
    for tag in ("compute_managed_pci_device", "blue,OWNER_NOVA"):
        with pytest.raises(ValueError, match="Nova would take"):
            names.tag_traits({"traits": tag})
    assert names.tag_traits({"traits": "blue"}) == {"CUSTOM_BLUE"}


@settings(max_examples=EXAMPLES * 5, derandomize=True, deadline=None)
@given(name=hst.text(max_size=40))
def test_normaliser_is_os_traits_own(name) -> None:
    """names spells out os_traits.normalize_name (importing os_traits
    costs every command's start-up): the two must never differ.  The
    physnet trait is the normaliser's output alone."""
    import os_traits

    assert names.physnet_trait(name) == os_traits.normalize_name(
        f"PHYSNET_{name}")


def test_novas_traits_are_os_traits_own() -> None:
    import os_traits

    assert names.NOVA_PCI_TRAIT == os_traits.COMPUTE_MANAGED_PCI_DEVICE
    nova_own = {os_traits.COMPUTE_MANAGED_PCI_DEVICE, os_traits.OWNER_NOVA}
    assert nova_own == names.NOVA_OWN_TRAITS
    # A standard trait named in a traits tag is kept as os_traits has it.
    assert names.traits_tag("hw_nic_sriov") == {"HW_NIC_SRIOV"}
