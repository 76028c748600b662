"""Flavors naming resource_class and traits with Nova's meaning: the
class compared after normalisation, the traits as required traits, on
the host (explain and claim) exactly as in Placement."""

import uuid

import pytest

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.ledger import Ledger
from pci_passthrough.model import device_attrs
from pci_passthrough.model import placement_names as names
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.placement import requests
from pci_passthrough.placement.tree import build_tree
from pci_passthrough.tracker import HostTracker

SPECS = (
    # 3b: tagged class and traits; af: neither (Nova's default class).
    '{"address": "0000:3b:00.0", "resource_class": "nic-fast", '
    '"traits": "blue,HW_NIC_SRIOV", "physical_network": "physnet1"}',
    '{"address": "0000:af:00.0", "physical_network": "phys-net.2"}',
    '{"vendor_id": "15b3", "resource_class": "CUSTOM_NIC_FAST", '
    '"group": "g1"}',
)
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1"),
    st.PfLayout("intel-x710", "0000:af:00.0", numvfs=2, netdev="ens5"),
    st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=2,
                netdev="ens2", switchdev=True),
))
PF_OF = {"3b": "0000:3b:00.0", "af": "0000:af:00.0", "5e": "0000:5e:00.0"}


def host(tmp_path, flavor_values):
    st.build_tree(tmp_path / "sys", LAYOUT)
    specs = devspec.parse_device_specs(SPECS)
    fs = flavors.parse_flavors(flavor_values, known_tags=specs.tag_names,
                               special_attributes=["group"])
    scan = sysfs_scan.scan(str(tmp_path / "sys"))
    tracker = HostTracker(fs, Ledger(tmp_path / "claims.db"))
    tracker.update_devices(scan, specs)
    return tracker, scan, specs, fs


def serving_pfs(tracker, scan, name):
    verdicts = tracker.explain(name, needs_netdev=False).devices
    parents = {d.address: d.parent_addr for d in scan.devices}
    return {parents[v.address][5:7] for v in verdicts
            if v.match and parents.get(v.address)}


@pytest.mark.parametrize(("flavor", "pfs"), [
    # The class as tagged, as normalised, in any case.
    ({"resource_class": "nic-fast"}, {"3b"}),
    ({"resource_class": "CUSTOM_NIC_FAST"}, {"3b"}),
    ({"resource_class": "NIC_FAST"}, {"3b"}),
    # 5e has the class too, but is grouped: only for flavors naming it.
    ({"resource_class": "nic-fast", "group": "g1"}, {"5e"}),
    # Nova's default class of an untagged Intel X710 VF (8086:154c).
    ({"resource_class": "CUSTOM_PCI_8086_154C"}, {"af"}),
    ({"resource_class": "custom_pci_8086_154c"}, {"af"}),
    ({"resource_class": "CUSTOM_OTHER"}, set()),
    # Traits: every one required, in any spelling.
    ({"traits": "blue"}, {"3b"}),
    ({"traits": "CUSTOM_BLUE,hw_nic_sriov"}, {"3b"}),
    ({"traits": "blue,CUSTOM_RED"}, set()),
    # What the translation gives: the physnet trait (Neutron's
    # normaliser), never Nova's managed-PCI trait (its own providers'
    # mark: a flavor asking for it gets none of ours).
    ({"traits": "CUSTOM_PHYSNET_PHYS_NET_2"}, {"af"}),
    ({"traits": "COMPUTE_MANAGED_PCI_DEVICE"}, set()),
    ({"traits": "COMPUTE_MANAGED_PCI_DEVICE", "group": "g1"}, set()),
])
def test_class_and_traits_have_novas_meaning(tmp_path, flavor, pfs) -> None:
    tracker, scan, specs, fs = host(tmp_path, [
        '{"name": "f", ' + ", ".join(
            f'"{k}": "{v}"' for k, v in flavor.items()) + "}"])
    try:
        assert serving_pfs(tracker, scan, "f") == pfs
        # The Placement request groups select exactly those providers.
        tree = build_tree("cmp1", scan.devices, specs, {"group"})
        groups = requests.flavor_groups(fs.get("f"), {"group"},
                                        tree.catalog(), prune=False)
        offered = {p.pf_address[5:7] for p in tree.providers
                   if any(g.served_by(p.resource_class, p.traits)
                          for g in groups)}
        assert offered == pfs
        if pfs:
            (alloc,) = tracker.claim(str(uuid.uuid4()), [PortRequest(
                index=0, flavor="f", needs_netdev=False)])
            assert alloc.parent_addr[5:7] in pfs
    finally:
        tracker.close()


def test_device_attrs_hold_normalised_class_and_traits(tmp_path) -> None:
    tracker, scan, specs, _ = host(tmp_path, [])
    tracker.close()
    vf = next(d for d in scan.devices if d.parent_addr == PF_OF["3b"])
    attrs = device_attrs.device_attrs(vf, specs.match(vf) or {})
    assert attrs["resource_class"] == "CUSTOM_NIC_FAST"
    assert attrs["traits"] == ",".join(sorted({
        "CUSTOM_BLUE", "HW_NIC_SRIOV", "CUSTOM_PHYSNET_PHYSNET1"}))
    # The provider's traits are exactly the matcher's view.
    (provider,) = [p for p in build_tree("cmp1", scan.devices, specs,
                                         {"group"}).providers
                   if p.pf_address == PF_OF["3b"]]
    assert provider.traits == device_attrs.placement_traits(attrs, {"group"})
    assert names.OWNER_TRAIT in provider.traits


def test_missing_traits_are_the_reason(tmp_path) -> None:
    tracker, scan, _, _ = host(tmp_path, [
        '{"name": "f", "traits": "blue,red"}'])
    try:
        verdicts = {v.address: v for v in tracker.explain(
            "f", needs_netdev=False).devices}
        vf = next(d.address for d in scan.devices
                  if d.parent_addr == PF_OF["3b"])
        assert verdicts[vf].reason == ("lacks the trait(s) CUSTOM_RED; "
                                       "the flavor requires them")
    finally:
        tracker.close()


def test_flavor_values_are_stored_normalised() -> None:
    fs = flavors.parse_flavors(
        ['{"name": "a", "resource_class": "nic-fast", '
         '"traits": "blue, hw_nic_sriov,CUSTOM_BLUE"}',
         '{"name": "a", "resource_class": "CUSTOM_NIC_FAST", '
         '"traits": "HW_NIC_SRIOV,blue"}'],
        known_tags=(), special_attributes=())
    first, second = fs.get("a")
    assert first.attrs == second.attrs
    assert first.get("traits") == "CUSTOM_BLUE,HW_NIC_SRIOV"


@pytest.mark.parametrize(("entry", "reason"), [
    ('{"name": "a", "resource_class": "-"}', "not valid"),
    # Within the tag bound, beyond Placement's once CUSTOM_ is added.
    ('{"name": "a", "resource_class": "x" * 250}', "not valid"),
    ('{"name": "a", "traits": " , "}', "names no trait"),
    ('{"name": "a", "traits": ["blue"]}', "tags are strings"),
])
def test_invalid_class_or_traits_name_the_flavor(entry, reason) -> None:
    entry = entry.replace('"x" * 250', '"' + "x" * 250 + '"')
    with pytest.raises(exception.InvalidFlavor) as err:
        flavors.parse_flavors([entry], known_tags=(),
                              special_attributes=())
    assert "flavor 'a'" in str(err.value) and reason in str(err.value)


@pytest.mark.parametrize("key", ["resource_class", "traits"])
def test_class_and_traits_cannot_be_special(key) -> None:
    with pytest.raises(exception.InvalidOption, match="Nova's meaning"):
        flavors.parse_flavors([], known_tags=(), special_attributes=[key])


@pytest.mark.parametrize("tags", [
    '"resource_class": "-"', '"traits": "ok,' + "b" * 260 + '"',
    '"physical_network": "' + "p" * 250 + '"'])
def test_device_spec_tags_that_cannot_be_placement_names(tags) -> None:
    with pytest.raises(exception.InvalidDeviceSpec, match="entry #1"):
        devspec.parse_device_specs(['{"vendor_id": "8086", ' + tags + "}"])
