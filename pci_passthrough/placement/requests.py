"""A flavor as GET /allocation_candidates queries.

Each alternative of a flavor becomes, per resource class it may be served
from, one request group: the class, the value traits of every attribute
it names (required), the marker traits of the special attributes it does
not name (forbidden), and the owner trait.  Alternatives that differ in
one required trait merge into one group with ``required=in:A,B``;
alternatives on different classes cannot be one group (Placement has no
"one of these classes").  N devices are N suffixed groups of one unit
with group_policy=none, as Nova asks; when the flavor needs several
groups kinds, one query per combination, so that the union of the
queries' answers is exactly the set of hosts the flavor can be served
on.
"""

import dataclasses
import itertools
import urllib.parse
from collections.abc import Collection, Iterable, Sequence

from pci_passthrough import exception
from pci_passthrough.config.flavors import FlavorSet, FlavorSpec
from pci_passthrough.model import placement_names as names
from pci_passthrough.model.device import DEV_TYPE_VF
from pci_passthrough.model.device_attrs import UNENCODED
from pci_passthrough.model.placement_names import (
    RESOURCE_CLASS_TAG,
    TRAITS_TAG,
)

#: Beyond this many queries a request is refused rather than sent.
MAX_QUERIES = 64
#: Placement's microversion the queries are written for.
MICROVERSION = "1.39"

Catalog = Collection[tuple[str, frozenset[str]]]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestGroup:
    """One unit of ``resource_class`` from one provider that has every
    ``required`` trait, at least one ``any_of`` trait (when given) and no
    ``forbidden`` trait."""

    resource_class: str
    required: frozenset[str]
    forbidden: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()

    def served_by(self, resource_class: str,
                  traits: Collection[str]) -> bool:
        return (resource_class == self.resource_class
                and self.required <= set(traits)
                and not self.forbidden & set(traits)
                and (not self.any_of or bool(self.any_of & set(traits))))

    @property
    def traits(self) -> frozenset[str]:
        return self.required | self.forbidden | self.any_of

    def params(self, suffix: str) -> list[tuple[str, str]]:
        terms = [*sorted(self.required),
                 *(f"!{t}" for t in sorted(self.forbidden))]
        out = [(f"resources{suffix}", f"{self.resource_class}:1"),
               (f"required{suffix}", ",".join(terms))]
        if self.any_of:
            out.append((f"required{suffix}",
                        "in:" + ",".join(sorted(self.any_of))))
        return out


def _fail(spec: FlavorSpec, reason: str) -> exception.PlacementRequestError:
    return exception.PlacementRequestError(flavor=spec.name, reason=reason)


def spec_traits(spec: FlavorSpec, special: Collection[str]
                ) -> tuple[frozenset[str], frozenset[str]] | None:
    """The required and forbidden traits of one flavor alternative; None
    when no VF can serve it (it asks for another device_type).

    :raises PlacementRequestError: it names what Placement cannot say.
    """
    required = {names.OWNER_TRAIT}
    for key, value in spec.attrs:
        if key == "address":
            raise _fail(spec, "it pins a PCI address, which Placement "
                              "cannot express (providers count the VFs "
                              "of a PF, not one VF)")
        if key == "dev_type":
            if value != DEV_TYPE_VF:
                return None
            continue
        if key == TRAITS_TAG:
            try:
                required |= names.traits_tag(value)
            except ValueError as exc:
                raise _fail(spec, str(exc)) from None
            continue
        if key in UNENCODED:
            continue
        required.add(names.value_trait(key, value))
    forbidden = {names.marker_trait(k) for k in special
                 if k not in spec.keys}
    return frozenset(required), frozenset(forbidden)


def spec_classes(spec: FlavorSpec, known: Iterable[str]) -> list[str]:
    """The classes an alternative may be served from: the one it names
    (Nova's meaning of resource_class), else every known class."""
    named = spec.get(RESOURCE_CLASS_TAG)
    if named is not None:
        try:
            return [names.resource_class(named)]
        except ValueError as exc:
            raise _fail(spec, str(exc)) from None
    return sorted(set(known))


def flavor_groups(specs: Sequence[FlavorSpec], special: Collection[str],
                  catalog: Catalog, *, prune: bool = True
                  ) -> list[RequestGroup]:
    """The request groups one device of the flavor may be taken by.

    :param catalog: the (class, traits) pairs of every provider that may
        be asked (one host's tree, or a fleet's): a class comes from here
        unless the flavor names one, and (with ``prune``) a group no
        provider of the catalog serves is left out.
    """
    classes = {rc for rc, _ in catalog}
    groups: list[RequestGroup] = []
    for spec in specs:
        traits = spec_traits(spec, special)
        if traits is None:
            continue
        required, forbidden = traits
        for rc in spec_classes(spec, classes):
            group = RequestGroup(rc, required, forbidden)
            if prune and not any(group.served_by(c, t)
                                 for c, t in catalog):
                continue
            if group not in groups:
                groups.append(group)
    return merge_groups(groups)


def merge_groups(groups: Sequence[RequestGroup]) -> list[RequestGroup]:
    """Merge groups that differ in one required trait into one group with
    an any-of clause: (X and a) or (X and b) is X and in:a,b."""
    merged: list[RequestGroup] = []
    for group in groups:
        for i, have in enumerate(merged):
            if (have.resource_class != group.resource_class
                    or have.forbidden != group.forbidden):
                continue
            if have.any_of:
                extra = group.required - have.required
                if len(extra) == 1 and group.required - extra == \
                        have.required:
                    merged[i] = dataclasses.replace(
                        have, any_of=have.any_of | extra)
                    break
            elif not group.any_of:
                only_have = have.required - group.required
                only_new = group.required - have.required
                if len(only_have) == 1 and len(only_new) == 1:
                    merged[i] = dataclasses.replace(
                        have, required=have.required & group.required,
                        any_of=only_have | only_new)
                    break
        else:
            merged.append(group)
    return merged


def group_queries(parts: Sequence[tuple[Sequence[RequestGroup], int]]
                  ) -> list[str]:
    """Queries for several requests at once (the ports of an instance):
    each part is the groups one device may be taken by and how many
    devices; one query per combination of choices.

    :raises PlacementRequestError: more than MAX_QUERIES combinations.
    """
    choices = []
    for groups, count in parts:
        if count < 1:
            raise exception.PlacementRequestError(
                flavor="-", reason=f"count {count} must be at least 1")
        if not groups:
            return []
        choices.append(list(itertools.combinations_with_replacement(
            range(len(groups)), count)))
    total = 1
    for c in choices:
        total *= len(c)
    if total > MAX_QUERIES:
        raise exception.PlacementRequestError(
            flavor="-", reason=f"it needs {total} queries (more than "
                               f"{MAX_QUERIES}): too many alternatives "
                               f"on different resource classes")
    queries = []
    for combo in itertools.product(*choices):
        params: list[tuple[str, str]] = []
        n = 0
        for (groups, _), picks in zip(parts, combo, strict=True):
            for pick in picks:
                params += groups[pick].params(f"_pci{n}")
                n += 1
        params.append(("group_policy", "none"))
        queries.append(urllib.parse.urlencode(params, safe=":,!"))
    return queries


def request_queries(flavors: FlavorSet, name: str, count: int,
                    catalog: Catalog, *, prune: bool = True) -> list[str]:
    """The queries for ``count`` devices of flavor ``name``; the flavor's
    candidates are the union of their answers (none: no provider of the
    catalog can serve it).  Without ``prune``, a query for every class
    of the catalog, for Placement alone to decide.

    :raises UnknownFlavor, PlacementRequestError:
    """
    specs = flavors.get(name)
    try:
        groups = flavor_groups(specs, flavors.special_attributes, catalog,
                               prune=prune)
        return group_queries([(groups, count)])
    except exception.PlacementRequestError as exc:
        if exc.kwargs.get("flavor") == "-":
            raise exception.PlacementRequestError(
                flavor=name, reason=exc.kwargs["reason"]) from None
        raise


def flavor_traits(flavors: FlavorSet) -> frozenset[str]:
    """Every trait a request for a configured flavor may name (so that
    sync creates them: Placement answers 400 to a query naming a trait it
    does not know, forbidden ones included)."""
    out: set[str] = set()
    special = flavors.special_attributes
    for specs in flavors.flavors.values():
        for spec in specs:
            try:
                traits = spec_traits(spec, special)
            except exception.PlacementRequestError:
                continue
            if traits is not None:
                out |= traits[0] | traits[1]
    out |= {names.marker_trait(k) for k in special}
    return frozenset(t for t in out if t.startswith("CUSTOM_"))


def flavor_classes(flavors: FlavorSet) -> frozenset[str]:
    """The custom classes configured flavors name."""
    out = set()
    for specs in flavors.flavors.values():
        for spec in specs:
            named = spec.get(RESOURCE_CLASS_TAG)
            if named is None:
                continue
            try:
                rc = names.resource_class(named)
            except ValueError:
                continue
            if rc.startswith("CUSTOM_"):
                out.add(rc)
    return frozenset(out)
