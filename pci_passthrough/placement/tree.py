"""The provider tree a host reports to Placement: a pure translation of
its devices and device_spec, no I/O.

Under the compute node's root provider, one child per PF that has
assignable VFs, holding one inventory of its VFs.  VFs of one PF whose
class or traits differ get one provider each (Nova refuses that
configuration; this library serves it).

Every attribute a flavor can name is on the provider as a value trait
(names.value_trait), and a special attribute also as a marker trait that
requests forbid unless they name it: so Placement offers a provider to a
request exactly when the library's matcher gives its VFs to the flavor.
"""

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.config.devspec import DeviceSpecList
from pci_passthrough.discovery import health
from pci_passthrough.ledger import LedgerRecord
from pci_passthrough.model import device_attrs
from pci_passthrough.model import placement_names as names
from pci_passthrough.model.device import PciDevice
from pci_passthrough.model.placement_names import RESOURCE_CLASS_TAG
from pci_passthrough.model.states import PortState


@dataclasses.dataclass(frozen=True, slots=True)
class PciProvider:
    """One child provider: VFs of one PF sharing class and traits."""

    name: str
    pf_address: str
    resource_class: str
    traits: frozenset[str]
    #: The VFs it counts, in address order.
    vfs: tuple[str, ...]
    reserved: int = 0
    #: The name this library gave it before names carried the marker
    #: (names.former_provider_name): a provider of ours found under it is
    #: this one, to be renamed.  None: it never had another.
    former_name: str | None = None

    @property
    def total(self) -> int:
        return len(self.vfs)

    def inventory(self) -> dict[str, dict[str, int | float]]:
        """The inventory as Placement's PUT body wants it."""
        return {self.resource_class: {
            "total": self.total, "reserved": self.reserved,
            "min_unit": 1, "max_unit": self.total, "step_size": 1,
            "allocation_ratio": 1.0}}

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "pf_address": self.pf_address,
                "resource_class": self.resource_class,
                "traits": sorted(self.traits), "total": self.total,
                "reserved": self.reserved, "vfs": list(self.vfs)}


@dataclasses.dataclass(frozen=True, slots=True)
class ProviderTree:
    """The root provider's name and its PCI children, sorted by name."""

    nodename: str
    providers: tuple[PciProvider, ...]

    def by_name(self) -> dict[str, PciProvider]:
        return {p.name: p for p in self.providers}

    def provider_of(self) -> dict[str, PciProvider]:
        """VF address -> its provider."""
        return {vf: p for p in self.providers for vf in p.vfs}

    @property
    def resource_classes(self) -> frozenset[str]:
        return frozenset(p.resource_class for p in self.providers)

    @property
    def traits(self) -> frozenset[str]:
        return frozenset(t for p in self.providers for t in p.traits)

    def catalog(self) -> frozenset[tuple[str, frozenset[str]]]:
        """The distinct (class, traits) pairs of the tree."""
        return frozenset((p.resource_class, p.traits)
                         for p in self.providers)

    def as_dict(self) -> dict[str, object]:
        return {"nodename": self.nodename,
                "providers": [p.as_dict() for p in self.providers]}


def check_specs(specs: DeviceSpecList) -> None:
    """Every spec's resource_class, traits and physical_network tags must
    give valid Placement names.

    :raises InvalidDeviceSpec: naming the spec and the tag.
    """
    for position, spec in enumerate(specs.specs, start=1):
        try:
            _check_tag_names(spec.tags)
        except ValueError as exc:
            entry = f"spec #{position} with tags " + json.dumps(
                dict(spec.tags), sort_keys=True)
            raise exception.InvalidDeviceSpec(
                group="pci_passthrough", option="device_spec", entry=entry,
                reason=str(exc)) from None


def _check_tag_names(tags: Mapping[str, str]) -> None:
    rc = tags.get(RESOURCE_CLASS_TAG)
    if rc:
        names.resource_class(rc)
    names.tag_traits(tags)


def build_tree(nodename: str, devices: Iterable[PciDevice],
               specs: DeviceSpecList,
               special_attributes: Collection[str],
               unhealthy_pfs: Collection[str] | None = None
               ) -> ProviderTree:
    """Translate the host's devices into its provider tree.

    Only VFs are reported (PFs are given to no flavor asking for a VF,
    and a PF with VFs in use cannot be given at all).  The VFs of an
    unhealthy PF (``unhealthy_pfs``; by default those pci_passthrough.
    health finds among ``devices``) are all reserved: Placement sends
    them no new instance, and the allocations they hold stay.

    :raises InvalidDeviceSpec: a tag cannot become a Placement name.
    :raises ValueError: the nodename makes a provider name too long.
    """
    check_specs(specs)
    devices = list(devices)
    if unhealthy_pfs is None:
        unhealthy_pfs = health.pf_problems(devices)
    groups: dict[tuple[str, str, frozenset[str]], list[str]] = {}
    for dev in devices:
        if not dev.is_vf or not dev.parent_addr:
            continue
        tags = specs.match(dev)
        if tags is None:
            continue
        # The matcher's own view of the device, so that Placement and
        # the host agree on its class and traits.
        attrs = device_attrs.device_attrs(dev, tags)
        key = (dev.parent_addr, attrs[RESOURCE_CLASS_TAG],
               device_attrs.placement_traits(attrs, special_attributes))
        groups.setdefault(key, []).append(dev.address)
    per_pf: dict[str, int] = {}
    for pf, _, _ in groups:
        per_pf[pf] = per_pf.get(pf, 0) + 1
    providers = []
    for (pf, rc, traits), vfs in groups.items():
        variant = former = None
        if per_pf[pf] > 1:
            variant = " ".join([rc, *sorted(traits)])
            # Formerly, the traits the suffix hashes held Nova's too.
            former = " ".join([rc, *sorted(traits | {names.NOVA_PCI_TRAIT})])
        providers.append(PciProvider(
            name=names.provider_name(nodename, pf, variant),
            pf_address=pf, resource_class=rc, traits=traits,
            vfs=tuple(sorted(vfs)),
            reserved=len(vfs) if pf in unhealthy_pfs else 0,
            former_name=names.former_provider_name(nodename, pf, former)))
    providers.sort(key=lambda p: p.name)
    return ProviderTree(nodename=nodename, providers=tuple(providers))


def consumer_units(tree: ProviderTree, records: Sequence[LedgerRecord]
                   ) -> tuple[dict[str, dict[str, int]], list[LedgerRecord]]:
    """What the ledger says each instance holds, per provider name: one
    unit per held VF; and the records whose device the tree lacks (a
    vanished device, or one no longer assignable)."""
    where = tree.provider_of()
    units: dict[str, dict[str, int]] = {}
    unmapped = []
    for rec in records:
        provider = where.get(rec.address)
        if provider is None:
            unmapped.append(rec)
            continue
        held = units.setdefault(rec.instance_uuid, {})
        held[provider.name] = held.get(provider.name, 0) + 1
    return units, unmapped


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerUnits:
    """What the ledger says Placement should hold on this host's
    providers, for the comparisons and heals that share it."""

    #: Instance -> provider name -> {resource class: units}: each
    #: instance whose units here are the ledger's to say.
    wanted: dict[str, dict[str, dict[str, int]]]
    #: Records whose device the tree lacks (vanished, or no longer
    #: assignable).
    unmapped: tuple[LedgerRecord, ...]
    #: Instances migrating away: Nova holds their units here under the
    #: migration's consumer while they move.
    leaving: frozenset[str]
    #: Instances left as they are: those migrating away, and those
    #: holding an unmapped device (its units' provider is unknown).
    left_alone: frozenset[str]

    @property
    def known(self) -> frozenset[str]:
        """Every instance the ledger holds devices for."""
        return frozenset(self.wanted) | self.left_alone


def ledger_units(tree: ProviderTree, records: Sequence[LedgerRecord]
                 ) -> LedgerUnits:
    """The units each instance must hold on the tree's providers (one
    per held VF, in its provider's class), and the instances that are
    not compared or healed."""
    units, unmapped = consumer_units(tree, records)
    classes = {p.name: p.resource_class for p in tree.providers}
    leaving = frozenset(r.instance_uuid for r in records
                        if r.state == PortState.OUTGOING)
    left_alone = leaving | {r.instance_uuid for r in unmapped}
    wanted = {consumer: {name: {classes[name]: n}
                         for name, n in held.items()}
              for consumer, held in units.items()
              if consumer not in left_alone}
    return LedgerUnits(wanted, tuple(unmapped), leaving, left_alone)


#: The inventory fields the host writes and compares.
INVENTORY_FIELDS = ("total", "reserved", "min_unit", "max_unit",
                    "step_size", "allocation_ratio")


def inventory_problems(have: Mapping[str, Mapping[str, Any]],
                       want: Mapping[str, Mapping[str, Any]]
                       ) -> list[str]:
    """What differs between the inventory Placement ``have`` and the
    one the host would write, ``want``, one line each."""
    problems = []
    for rc in sorted(set(have) - set(want)):
        problems.append(f"inventory of {rc}, which the host does not "
                        f"report")
    for rc, inv in sorted(want.items()):
        if rc not in have:
            problems.append(f"no inventory of {rc} "
                            f"(the host has {inv['total']})")
            continue
        for field in INVENTORY_FIELDS:
            if field in inv and have[rc].get(field) != inv[field]:
                problems.append(f"{rc} {field} {have[rc].get(field)!r}, "
                                f"the host says {inv[field]!r}")
    return problems


def inventory_differs(have: Mapping[str, Mapping[str, Any]],
                      want: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether writing ``want`` would change ``have`` (sync's compare
    before write)."""
    return bool(inventory_problems(have, want))
