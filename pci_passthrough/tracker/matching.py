"""Do a device's attributes (or a pool's, shared by alike devices) serve
a flavor, and if not, why; and the NUMA policies.

These are the ``attributes`` and ``numa`` steps of the tracker's filter
chain (:mod:`pci_passthrough.tracker.filters`), which claims and
``explain`` both run.  The attribute steps run in a fixed order and the
first that drops a candidate gives the reason:

1. PFs are given only to a flavor asking for device_type type-PF.
2. Every attribute the flavor names must be equal on the device.
   Two keys have Nova's meaning instead, as in Placement: the flavor's
   ``resource_class`` must equal the device's class (its device_spec
   tag, else ``CUSTOM_PCI_<VENDOR>_<PRODUCT>``), both normalised; and
   the flavor's ``traits`` must all be among the device's traits (the
   traits of the provider that reports it).
3. Special attributes: a device carrying one is given only to a flavor
   that names it (with an equal value, which step 2 checked).

A device's attributes come from
:func:`pci_passthrough.model.device_attrs.device_attrs`, whose names go
through :mod:`pci_passthrough.model.placement_names`, the one
normalisation, so explain, claim and the Placement requests agree.
"""

from collections.abc import Collection, Mapping

from pci_passthrough.config.flavors import FlavorSpec
from pci_passthrough.model.device import DEV_TYPE_PF
from pci_passthrough.model.device_attrs import placement_traits
from pci_passthrough.model.placement_names import (
    TRAITS_TAG,
)

Attrs = Mapping[str, str]


def attribute_mismatch(flavor: FlavorSpec, attrs: Attrs,
                       special: Collection[str],
                       ignore: Collection[str] = ()) -> str | None:
    """The first reason ``attrs`` do not serve ``flavor``; None if they do.

    :param ignore: attributes not decided here (a pool leaves the address
        to its devices).
    """
    if attrs.get("dev_type") == DEV_TYPE_PF and \
            flavor.get("dev_type") != DEV_TYPE_PF:
        return "a PF, and the flavor does not ask for device_type type-PF"
    for key, wanted in flavor.attrs:
        if key in ignore:
            continue
        if key == TRAITS_TAG:
            missing = {t for t in wanted.split(",") if t} - \
                placement_traits(attrs, special)
            if missing:
                return (f"lacks the trait(s) {', '.join(sorted(missing))}"
                        f"; the flavor requires them")
            continue
        have = attrs.get(key)
        if have != wanted:
            shown = "device_type" if key == "dev_type" else key
            if have is None:
                return f"has no {shown}; the flavor asks for {wanted}"
            return f"{shown} is {have}; the flavor asks for {wanted}"
    names = flavor.keys
    for key in sorted(special):
        if key in attrs and key not in names:
            return (f"carries the special attribute {key}={attrs[key]}, "
                    f"which the flavor does not name")
    return None


def first_mismatch(specs: tuple[FlavorSpec, ...], attrs: Attrs,
                   special: Collection[str],
                   ignore: Collection[str] = ()) -> str | None:
    """None when any alternative of the flavor matches, else the reason
    the first alternative gives."""
    reasons = []
    for spec in specs:
        reason = attribute_mismatch(spec, attrs, special, ignore)
        if reason is None:
            return None
        reasons.append(reason)
    return reasons[0] if reasons else "the flavor has no alternatives"


def numa_mismatch(policy: str | None, numa_node: int | None,
                  cells: Collection[int] | None) -> str | None:
    """Nova's NUMA policies for an instance confined to ``cells``:
    required takes only those cells' devices; legacy (the default) also
    devices without NUMA information; preferred takes any device (the
    caller prefers the cells' ones)."""
    if cells is None or policy == "preferred":
        return None
    if numa_node is not None and numa_node in cells:
        return None
    if numa_node is None and policy != "required":
        return None
    where = "no NUMA node" if numa_node is None else f"NUMA node {numa_node}"
    return (f"on {where}; the instance's cells are "
            f"{', '.join(map(str, sorted(cells)))} (numa_policy "
            f"{policy or 'legacy'})")
