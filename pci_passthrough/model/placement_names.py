"""Placement names: resource classes, traits and provider names.

Nova's rules where Nova has one (pci_placement_translator): a
``resource_class`` tag is upper-cased and, unless standard or already
``CUSTOM_``, normalised by os-resource-classes; the default class is
``CUSTOM_PCI_<VENDOR>_<PRODUCT>``; a ``traits`` tag is split on commas,
standard names kept, others normalised by os-traits; Neutron's physnet
trait is the normaliser applied to ``PHYSNET_<name>``.

Our own traits carry attribute values exactly.  A normalised name is
lossy ("phys-net" and "phys_net" both give PHYS_NET) while the library
compares values exactly (case aside), so a value trait ends with a hash
of the exact key and value: two values the matcher tells apart never
share a trait, and a long value never makes an invalid name.

Provider names follow Nova's pattern with a marker that keeps them apart
from Nova's own PCI providers (provider_name).
"""

import functools
import hashlib
import re
from collections.abc import Mapping

import os_resource_classes

#: Tags (and flavor keys) with Nova's meaning in Placement: the class and
#: the required traits, compared after normalisation, not as values.
RESOURCE_CLASS_TAG = "resource_class"
TRAITS_TAG = "traits"
PHYSNET_TAG = "physical_network"
#: Placement's limit on trait and resource class names.
MAX_NAME = 255
#: Placement's limit on resource provider names.
MAX_PROVIDER_NAME = 200
#: In every provider name this library gives, after the PF's address:
#: no PCI address ends with it (see provider_name).
PROVIDER_MARK = "pcipt"
_CUSTOM = re.compile(r"CUSTOM_[A-Z0-9_]*[A-Z0-9][A-Z0-9_]*\Z")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_STANDARD_CLASSES = frozenset(os_resource_classes.STANDARDS)

#: Nova's trait on the PCI providers it reports, by which it finds them
#: (with ``[pci] report_in_placement`` False, one in its tree stops
#: nova-compute; True, it deletes those it did not make).  This library's
#: providers carried it under their former names: found on one of ours,
#: it is removed.
NOVA_PCI_TRAIT = "COMPUTE_MANAGED_PCI_DEVICE"
#: Nova's marks of its own providers (OWNER_NOVA: its PCI requests require
#: it), which no device_spec may give ours.
NOVA_OWN_TRAITS = frozenset({NOVA_PCI_TRAIT, "OWNER_NOVA"})
#: Our own mark on every provider this library reports: the reporter
#: finds its providers by it, and every request requires it, so that
#: providers others report (Nova's own PCI ones) are never offered.
OWNER_TRAIT = "CUSTOM_PCIPT_SRIOV_VF"
_PREFIX = "CUSTOM_PCIPT_"
# Readable part of a value trait: bounded so that the name stays short.
_READABLE = 48
_HASH_CHARS = 10


# os_traits.normalize_name, spelled out: importing os_traits loads every
# trait module (about 20 ms), and device_spec parsing, so every command's
# start-up, needs the normaliser.  A unit test holds the two equal.
def _normalize(name: str) -> str:
    return "CUSTOM_" + _NON_ALNUM.sub("_", name).upper()


@functools.cache
def _standard_traits() -> frozenset[str]:
    import os_traits

    return frozenset(os_traits.get_traits())


def _check(name: str, what: str, source: str) -> str:
    if len(name) > MAX_NAME or not _CUSTOM.match(name):
        raise ValueError(
            f"{what} {source!r} gives the Placement name {name!r}, which "
            f"is not valid: expected CUSTOM_ followed by 1 to "
            f"{MAX_NAME - 7} characters A-Z, 0-9 or _, at least one a "
            f"letter or digit")
    return name


def resource_class(tag: str) -> str:
    """A ``resource_class`` tag as Placement's class name (Nova's rule).

    :raises ValueError: the tag cannot become a valid class name.
    """
    upper = tag.strip().upper()
    if upper in _STANDARD_CLASSES:
        return upper
    name = upper if upper.startswith("CUSTOM_") else _normalize(upper)
    return _check(name, "resource_class", tag)


def default_resource_class(vendor_id: str, product_id: str) -> str:
    """Nova's class for a device without a ``resource_class`` tag."""
    return f"CUSTOM_PCI_{vendor_id.upper()}_{product_id.upper()}"


def traits_tag(tag: str) -> frozenset[str]:
    """A ``traits`` tag (comma separated) as Placement trait names.

    :raises ValueError: a name cannot become a valid trait.
    """
    names = set()
    for item in tag.split(","):
        item = item.strip()
        if not item:
            continue
        upper = item.upper()
        if upper in _standard_traits():
            names.add(upper)
            continue
        name = upper if upper.startswith("CUSTOM_") else _normalize(upper)
        names.add(_check(name, "trait", item))
    return frozenset(names)


def tag_traits(tags: Mapping[str, str]) -> frozenset[str]:
    """The traits a device_spec's tags give its devices: the ``traits``
    tag's names and the physnet trait of ``physical_network``.

    :raises ValueError: a name cannot become a valid trait, or is one of
        Nova's marks of its own providers.
    """
    traits: set[str] = set()
    if tags.get(TRAITS_TAG):
        traits |= traits_tag(tags[TRAITS_TAG])
    clash = sorted(traits & NOVA_OWN_TRAITS)
    if clash:
        raise ValueError(
            f"trait {', '.join(clash)} marks the providers Nova reports "
            f"itself: Nova would take this library's provider for its own")
    if tags.get(PHYSNET_TAG):
        traits.add(physnet_trait(tags[PHYSNET_TAG]))
    return frozenset(traits)


def physnet_trait(physnet: str) -> str:
    """Neutron's trait for a physical network (``CUSTOM_PHYSNET_...``).

    :raises ValueError: the name cannot become a valid trait.
    """
    return _check(_normalize(f"PHYSNET_{physnet}"), "physical_network",
                  physnet)


def _digest(*parts: str) -> str:
    text = "\0".join(parts).encode()
    return hashlib.sha256(text).hexdigest()[:_HASH_CHARS].upper()


def _readable(text: str) -> str:
    return _normalize(text)[len("CUSTOM_"):][:_READABLE].strip("_") or "X"


def value_trait(key: str, value: str) -> str:
    """The trait saying attribute ``key`` has ``value`` (compared as the
    matcher compares it: the value in lower case)."""
    value = value.lower()
    return (f"{_PREFIX}{_readable(key)}_{_readable(value)}_"
            f"{_digest(key, value)}")


def marker_trait(key: str) -> str:
    """The trait saying a device carries special attribute ``key``:
    requests that do not name ``key`` forbid it."""
    return f"{_PREFIX}HAS_{_readable(key)}_{_digest(key)}"


def provider_name(nodename: str, pf_address: str,
                  variant: str | None = None) -> str:
    """A PF's provider, ``<nodename>_<ADDRESS>_pcipt``; with ``variant``
    (the PF's VFs split into several providers) a suffix derived from
    what sets them apart, so that names do not depend on the order
    devices are found in.

    Nova names its own PCI providers ``<hypervisor hostname>_<ADDRESS>``:
    its names end with an upper-cased PCI address, ours never do, so
    whatever the host names the two never meet.

    :raises ValueError: the name is longer than Placement allows.
    """
    name = _name(nodename, pf_address, PROVIDER_MARK, variant)
    if len(name) > MAX_PROVIDER_NAME:
        raise ValueError(
            f"provider name {name!r} is {len(name)} characters; Placement "
            f"allows {MAX_PROVIDER_NAME}: use a shorter nodename")
    return name


def former_provider_name(nodename: str, pf_address: str,
                         variant: str | None = None) -> str:
    """The name this library gave the provider before its names carried
    the marker: Nova's own, ``<nodename>_<ADDRESS>``, and
    ``<nodename>_<ADDRESS>_<hash>`` for a variant (whose traits then
    included NOVA_PCI_TRAIT).  A provider found under it is renamed."""
    return _name(nodename, pf_address, None, variant)


def _name(nodename: str, pf_address: str, mark: str | None,
          variant: str | None) -> str:
    parts = [nodename, pf_address.upper()]
    if mark is not None:
        parts.append(mark)
    if variant is not None:
        parts.append(_digest(variant)[:8])
    return "_".join(parts)
