"""This host as Placement sees it: the provider tree built from the last
scan, the providers' UUIDs once learnt, the request a flavor makes, and
which VFs a scheduler's allocation leaves a port."""

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from pci_passthrough import exception
from pci_passthrough.agent._checks import shorten
from pci_passthrough.agent._nova_allocation import (
    amounts,
    check_amounts,
    groups,
    provider_of,
)
from pci_passthrough.agent.scan import HostScan
from pci_passthrough.config.devspec import DeviceSpecList
from pci_passthrough.config.flavors import FlavorSet
from pci_passthrough.model.claims import PortRequest, canonical_port_id
from pci_passthrough.model.device import PciDevice
from pci_passthrough.placement import allocation as placement_allocation
from pci_passthrough.placement import provider_tree as placement_provider_tree
from pci_passthrough.placement import requests as placement_requests
from pci_passthrough.placement.tree import ProviderTree, build_tree
from pci_passthrough.tracker import HostTracker


class HostPlacement:
    """One host's providers and requests.

    :param default_nodename: the compute node's name when none is given
        (option nodename, else the host name).
    :param tracker: the host's device tracker.
    :param scan: scans before a tree is first built.
    :param specs: the parsed option device_spec.
    :param flavors: the configured flavors.
    """

    def __init__(self, default_nodename: Callable[[], str],
                 tracker: HostTracker, scan: HostScan,
                 specs: DeviceSpecList, flavors: FlavorSet) -> None:
        self._default_nodename = default_nodename
        self._tracker = tracker
        self._scan = scan
        self._specs = specs
        self._flavors = flavors
        #: (nodename, provider name -> UUID), once learnt.
        self._uuids: tuple[str, dict[str, str]] | None = None
        #: The last scan's devices and the tree built from them.
        self._tree: tuple[tuple[PciDevice, ...], ProviderTree] | None = None

    def default_nodename(self) -> str:
        return self._default_nodename()

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: dict[str, Any] | None = None
                             ) -> placement_provider_tree.TreeUpdate:
        """Make nova's ProviderTree hold this host's PF providers (see
        HostAgent.update_provider_tree) and learn their UUIDs."""
        tree = self.tree(nodename)
        update = placement_provider_tree.update_provider_tree(
            provider_tree, nodename, tree, self._tracker.records(),
            allocations)
        self.remember_providers(nodename, {
            p.name: provider_tree.data(p.name).uuid
            for p in tree.providers})
        return update

    def remember_providers(self, nodename: str,
                           uuids: Mapping[str, str]) -> None:
        """The UUIDs Placement gave this host's providers, by name."""
        self._uuids = (nodename, dict(uuids))

    def tree(self, nodename: str | None = None) -> ProviderTree:
        """The provider tree this host reports (by default under
        default_nodename())."""
        if not nodename:
            nodename = self._default_nodename()
        self._scan.ensure()
        devices = self._tracker.scanned_devices()
        cached = self._tree
        # One tree per scan: claims read it on every call.
        if cached is not None and cached[0] is devices and \
                cached[1].nodename == nodename:
            return cached[1]
        tree = build_tree(nodename, devices, self._specs,
                          self._flavors.special_attributes)
        self._tree = (devices, tree)
        return tree

    def resources(self, instance: str, addresses: Sequence[str]
                  ) -> dict[str, dict[str, int]]:
        """Per provider UUID, the units these held VFs of the instance
        take: {uuid: {resource class: count}}, nova's form of an
        allocation's resources.

        :raises AllocationMismatch: the providers' UUIDs are not known
            yet, or a VF is on no provider of this host.
        """
        nodename, uuids = self._known(instance)
        where = self.tree(nodename).provider_of()
        out: dict[str, dict[str, int]] = {}
        for address in addresses:
            provider = where.get(address)
            uuid = uuids.get(provider.name) if provider else None
            if provider is None or uuid is None:
                raise exception.AllocationMismatch(
                    instance=instance,
                    reason=f"its device {address} is on no provider this "
                           f"host reported")
            units = out.setdefault(uuid, {})
            units[provider.resource_class] = \
                units.get(provider.resource_class, 0) + 1
        return out

    def device_tags(self, device: PciDevice) -> dict[str, str]:
        """The tags the option device_spec gives ``device`` (none when
        no spec matches it)."""
        return dict(self._specs.match(device) or {})

    def request_groups(self, flavor: str, count: int = 1) -> list[str]:
        """The allocation candidates queries for ``count`` devices of
        ``flavor`` (see HostAgent.request_groups)."""
        return placement_requests.request_queries(
            self._flavors, flavor, count, self.tree().catalog())

    def flavor_traits(self) -> frozenset[str]:
        """The traits the flavors' requests name."""
        return placement_requests.flavor_traits(self._flavors)

    def flavor_classes(self) -> frozenset[str]:
        """The custom resource classes the flavors' requests name."""
        return placement_requests.flavor_classes(self._flavors)

    def allocated_vfs(self, instance: str, ports: Sequence[PortRequest],
                      allocation: Mapping[Any, Any],
                      provider_mapping: Mapping[str, Any] | None = None,
                      unplaced: Collection[str] = ()
                      ) -> dict[int, frozenset[str] | None]:
        """Per port index, the VFs of the provider it was allocated on;
        None for a port of ``unplaced``.

        :param allocation: per port index, a provider UUID; or, with
            ``provider_mapping``, nova's allocation of the instance
            (provider UUID -> {"resources": {class: amount}}).
        :param provider_mapping: nova's request group mapping
            (RequestSpec.get_request_group_mapping(): requester id, the
            port's UUID, -> the provider UUIDs of its request group).
        :param unplaced: with ``provider_mapping``, the UUIDs of ports
            that have no request group (their flavor cannot be one):
            Placement did not place them, any VF that serves them will do.
        :raises AllocationMismatch: the allocation is malformed, does
            not name one provider per port, or names providers this host
            does not have (or does not know yet).
        """
        free = frozenset(canonical_port_id(u) for u in unplaced)
        if free and provider_mapping is None:
            raise exception.AllocationMismatch(
                instance=instance,
                reason="ports without a request group need nova's form "
                       "of allocation (provider_mapping)")
        placed = [p for p in ports if p.port_id not in free]
        if provider_mapping is not None:
            allocation = self._nova_per_port(instance, placed, allocation,
                                             provider_mapping)
        elif isinstance(allocation, Mapping) and allocation and all(
                isinstance(v, Mapping) for v in allocation.values()):
            raise exception.AllocationMismatch(
                instance=instance,
                reason="nova's allocation (provider UUID -> resources) "
                       "needs the request groups' provider_mapping too")
        if not isinstance(allocation, Mapping) or not all(
                isinstance(k, int) and isinstance(v, str)
                for k, v in allocation.items()):
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"expected a mapping of port index to provider "
                       f"UUID, got {shorten(repr(allocation))}")
        indexes = [p.index for p in placed]
        lacking = sorted(set(indexes) - set(allocation))
        extra = sorted(set(allocation) - set(indexes))
        if lacking or extra:
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"it must name one provider per requested port "
                       f"({', '.join(map(str, sorted(indexes)))}); "
                       f"missing: {', '.join(map(str, lacking)) or 'none'}"
                       f", not requested: "
                       f"{', '.join(map(str, extra)) or 'none'}")
        nodename, uuids = self._known(instance)
        chosen = placement_allocation.port_providers(
            self.tree(nodename), instance, uuids,
            [allocation[i] for i in indexes])
        within: dict[int, frozenset[str] | None] = {
            p.index: None for p in ports}
        within.update({i: frozenset(p.vfs)
                       for i, p in zip(indexes, chosen, strict=True)})
        return within

    def _known(self, instance: str) -> tuple[str, dict[str, str]]:
        known = self._uuids
        if known is None:
            raise exception.AllocationMismatch(
                instance=instance,
                reason="this host does not know its Placement providers "
                       "yet (update_provider_tree or "
                       "use_placement_providers has not been called)")
        return known

    def _nova_per_port(self, instance: str, ports: Sequence[PortRequest],
                       allocation: Any, provider_mapping: Any
                       ) -> dict[int, str]:
        """Per port index, the one provider of this host in its port's
        request group, checked against nova's allocation."""
        nodename, uuids = self._known(instance)
        classes = {uuids[p.name]: p.resource_class
                   for p in self.tree(nodename).providers
                   if p.name in uuids}
        allocated = amounts(instance, allocation, classes)
        mapping = groups(instance, provider_mapping)
        per_port: dict[int, str] = {}
        for port in ports:
            per_port[port.index] = provider_of(
                instance, port, mapping, classes)
        check_amounts(instance, per_port, allocated)
        return per_port
