"""The attributes of a device that a flavor can name, and the traits of
the Placement provider that reports it.

One normalisation for the host's matcher
(:mod:`pci_passthrough.tracker.matching`) and for Placement
(:mod:`pci_passthrough.placement.tree`): both read a device through
:func:`device_attrs`, so what the host serves and what Placement offers
cannot differ.
"""

import functools
from collections.abc import Collection, Mapping

from pci_passthrough.model import placement_names as names
from pci_passthrough.model.device import PciDevice
from pci_passthrough.model.placement_names import (
    RESOURCE_CLASS_TAG,
    TRAITS_TAG,
)

Attrs = Mapping[str, str]
#: Attributes that never become value traits: the address is per VF (a
#: provider holds many), every reported device is a VF, and the class and
#: traits already are the provider's class and traits.
UNENCODED = frozenset({"address", "dev_type", RESOURCE_CLASS_TAG,
                       TRAITS_TAG})


def device_attrs(dev: PciDevice, tags: Mapping[str, str]) -> dict[str, str]:
    """The attributes a flavor can name, normalised for comparison: ids
    and tag values in lower case; ``resource_class`` the device's
    Placement class, ``traits`` its tags' Placement traits (sorted,
    comma separated).

    :raises ValueError: a tag cannot become a Placement name (device_spec
        parsing refuses such tags).
    """
    attrs = {k: str(v).lower() for k, v in tags.items()}
    attrs.update(vendor_id=dev.vendor_id, product_id=dev.product_id,
                 dev_type=dev.dev_type, address=dev.address)
    if dev.numa_node is not None:
        attrs["numa_node"] = str(dev.numa_node)
    rc, traits = _tag_names(tags.get(RESOURCE_CLASS_TAG) or None,
                            tags.get(TRAITS_TAG) or None,
                            tags.get(names.PHYSNET_TAG) or None)
    attrs[RESOURCE_CLASS_TAG] = rc or names.default_resource_class(
        dev.vendor_id, dev.product_id)
    attrs[TRAITS_TAG] = traits
    return attrs


# A pure function of a spec's three tags, memoised: a host has a few
# specs and thousands of VFs, and normalising is most of a scan's cost.
@functools.lru_cache(maxsize=1024)
def _tag_names(rc: str | None, traits: str | None,
               physnet: str | None) -> tuple[str | None, str]:
    tags = {k: v for k, v in ((RESOURCE_CLASS_TAG, rc), (TRAITS_TAG, traits),
                              (names.PHYSNET_TAG, physnet)) if v}
    return ((names.resource_class(rc) if rc else None),
            ",".join(sorted(names.tag_traits(tags))))


def placement_traits(attrs: Attrs,
                     special: Collection[str]) -> frozenset[str]:
    """The traits of the provider reporting a device of ``attrs``: its
    tags' traits, a value trait per attribute a flavor can name, a marker
    per special attribute it carries, and our owner trait (never Nova's
    NOVA_PCI_TRAIT: Nova takes a provider carrying it for its own).
    """
    traits = {t for t in attrs.get(TRAITS_TAG, "").split(",") if t}
    traits |= {names.value_trait(k, v) for k, v in attrs.items()
               if k not in UNENCODED}
    traits |= {names.marker_trait(k) for k in special if k in attrs}
    traits.add(names.OWNER_TRAIT)
    return frozenset(traits)
