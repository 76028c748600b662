"""Which device each port of a claim takes: the first, in order of
preference, that the filter chain lets serve it."""

from collections.abc import Collection, Mapping, Sequence

from pci_passthrough import exception
from pci_passthrough.config.flavors import FlavorSet, FlavorSpec
from pci_passthrough.model.claims import Explanation, PortRequest
from pci_passthrough.tracker._explain import explain, within_reason
from pci_passthrough.tracker._inventory import Inventory
from pci_passthrough.tracker._pools import Pool
from pci_passthrough.tracker.filters import (
    HostFacts,
    Request,
    pool_may_serve,
    why_not,
)

# Pools passing the per-flavor filters are kept per flavor; inline specs
# make new flavors at will, so the cache is emptied when it reaches this
# size.
_POOL_CACHE_SIZE = 256


class Selector:
    """Picks devices for ports and explains the picks.

    :param flavors: the configured flavors and special attributes.
    :param inventory: the scanned devices and their pools.
    :param facts: what the filters read of the host.
    """

    def __init__(self, flavors: FlavorSet, inventory: Inventory,
                 facts: HostFacts) -> None:
        self.flavors = flavors
        self._inventory = inventory
        self._facts = facts
        self._pool_cache: dict[tuple[FlavorSpec, ...], list[Pool]] = {}

    def forget_pools(self) -> None:
        """The pools were rebuilt by a rescan."""
        self._pool_cache.clear()

    def specs_of(self, port: PortRequest) -> tuple[FlavorSpec, ...]:
        """The port's flavor alternatives, named or inline."""
        if port.flavor is not None:
            return self.flavors.get(port.flavor)
        assert port.spec is not None
        return self.flavors.inline(port.spec, port.index)

    def request(self, specs: tuple[FlavorSpec, ...], needs_netdev: bool,
                cells: Collection[int] | None,
                allowed: Collection[str] | None = None,
                taken: Mapping[str, str | None] | None = None
                ) -> Request:
        """The filters' view of a port's request."""
        return Request(specs, self.flavors.special_attributes,
                               needs_netdev, cells, dict(taken or {}),
                               allowed)

    def _flavor_pools(self, req: Request) -> list[Pool]:
        pools = self._pool_cache.get(req.specs)
        if pools is None:
            pools = [p for p in self._inventory.pools.values()
                     if pool_may_serve(p, req, per_flavor=True)]
            if len(self._pool_cache) >= _POOL_CACHE_SIZE:
                self._pool_cache.clear()
            self._pool_cache[req.specs] = pools
        return pools

    def pick(self, req: Request) -> str | None:
        """The first device, in order of preference, that the filter
        chain lets serve ``req``; None if there is none."""
        pools = self._flavor_pools(req)
        if req.policy == "preferred" and req.cells is not None:
            # Best effort: the instance's own cells first.
            cells = req.cells
            pools = sorted(pools, key=lambda p: p.numa_node not in cells)
        # When every alternative pins an address only those can pass the
        # attributes filter: the others are not worth asking.
        pinned = {s.get("address") for s in req.specs}
        entries = self._inventory.entries
        for pool in pools:
            if not pool_may_serve(pool, req, per_flavor=False):
                continue
            for address in pool.free:
                if None not in pinned and address not in pinned:
                    continue
                if why_not(entries[address], req,
                                  self._facts) is None:
                    return address
        return None

    def select(self, instance: str,
               wanted: Sequence[tuple[PortRequest, tuple[FlavorSpec, ...]]],
               cells: Collection[int] | None,
               within: Sequence[Collection[str] | None] | None = None
               ) -> list[str]:
        """One device per port, each filtered as taken by the ports
        before it.

        :raises ClaimFailed: naming the first port no device serves, and
            why.
        """
        taken: dict[str, str | None] = {}
        for n, (port, specs) in enumerate(wanted):
            only = None if within is None else within[n]
            allowed = None if only is None else frozenset(only)
            req = self.request(specs, port.needs_netdev, cells, allowed,
                               taken=dict(taken))
            address = self.pick(req)
            if address is None:
                explanation = self.explain(req, port.label, 1)
                reason = explanation.summary()
                if allowed is not None:
                    reason = within_reason(explanation, allowed)
                raise exception.ClaimFailed(
                    instance=instance, port=port.index, flavor=port.label,
                    reason=reason)
            taken[address] = self._inventory.parent(address)
        return list(taken)

    def explain(self, req: Request, label: str,
                count: int) -> Explanation:
        """See :func:`pci_passthrough.tracker._explain.explain`."""
        return explain(self._inventory, self._facts, req, label,
                                count, self.pick)
