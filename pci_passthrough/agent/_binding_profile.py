"""The fields of a Neutron port's binding profile that describe its VF,
as nova writes them from its own PCI claim
(nova.network.neutron.API._get_pci_device_profile): a fork writes
these instead, for the VF this library claimed, so that Neutron and the
guest name the same VF."""

from collections.abc import Mapping
from typing import Any

from pci_passthrough.model.device import PciDevice


def binding_profile(vf: PciDevice, pf: PciDevice | None,
                    tags: Mapping[str, str]) -> dict[str, Any]:
    """``pci_slot``, ``pci_vendor_info`` and ``physical_network`` of a
    claimed device, and for a VF ``pf_mac_address`` (its PF netdev's
    address, as the last scan read it from sysfs) and ``vf_num`` (its
    index among the PF's VFs) when known; nova leaves those two out
    when it does not know them, and so does this.

    :param tags: the device's device_spec tags (``physical_network``
        among them; None when it has none, as in nova).
    """
    profile: dict[str, Any] = {
        "pci_slot": vf.address,
        "pci_vendor_info": f"{vf.vendor_id}:{vf.product_id}",
        "physical_network": tags.get("physical_network"),
    }
    if vf.is_vf:
        if pf is not None and pf.mac is not None:
            profile["pf_mac_address"] = pf.mac
        if vf.vf_index is not None:
            profile["vf_num"] = vf.vf_index
    return profile
