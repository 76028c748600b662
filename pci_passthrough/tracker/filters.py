"""Can this device serve this request, and if not, why: one chain of
filters that claims, the availability index, explain and the metrics all
read, so that they cannot disagree.

The filters run in :data:`CHAIN`'s order; the first that drops a device
gives the reason an operator sees in ``explain``:

1. ``attributes``: the flavor's attributes and the special attributes
   (:mod:`pci_passthrough.tracker.matching`; PFs only for type-PF).
2. ``state``: the device is free now, whatever is asked
   (:data:`STATE_CHAIN`: not held, its PF healthy, its netdev state
   restored, neither its PF nor any of its VFs held).  The availability
   index keeps, in each pool, the members this step passes.
3. ``taken``: no earlier port of the same claim took it, its PF or one
   of its VFs.
4. ``netdev``: a port backing a macvtap interface needs a VF with a
   netdev.
5. ``numa``: the flavor's NUMA policy for the instance's cells.
6. ``allocated``: a port Placement allocated on a PF takes only the
   devices it was given.

A filter may also judge a pool of alike devices as a whole: when it says
no member can pass, selection skips the pool without looking at its
members, which is what keeps a claim's cost growing with the pools, not
the devices.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping

from pci_passthrough.config.flavors import FlavorSpec
from pci_passthrough.model.device import DEV_TYPE_VF, PciDevice
from pci_passthrough.tracker._health import PfHealth
from pci_passthrough.tracker._holdings import Holdings
from pci_passthrough.tracker._inventory import Entry
from pci_passthrough.tracker._pools import Pool
from pci_passthrough.tracker.matching import first_mismatch, numa_mismatch


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One port's request, as the filters see it."""

    specs: tuple[FlavorSpec, ...]
    #: The flavors' special attributes.
    special: frozenset[str]
    #: The port backs a macvtap interface.
    needs_netdev: bool = True
    #: The instance's NUMA cells, if it is confined to some.
    cells: Collection[int] | None = None
    #: Device -> its PF, for the devices earlier ports of the same claim
    #: took.
    taken: Mapping[str, str | None] = dataclasses.field(
        default_factory=dict)
    #: The only devices the port may take, if it is confined.
    allowed: Collection[str] | None = None

    @property
    def policy(self) -> str | None:
        return self.specs[0].numa_policy

    def after(self, address: str, parent: str | None) -> "Request":
        """This request for the next port, once ``address`` is taken."""
        return dataclasses.replace(self,
                                   taken={**self.taken, address: parent})


@dataclasses.dataclass(frozen=True, slots=True)
class HostFacts:
    """What the filters read of the host (live, not copies)."""

    holdings: Holdings
    health: PfHealth


@dataclasses.dataclass(frozen=True, slots=True)
class Filter:
    """One step of the chain."""

    name: str
    #: Why the step drops the device for the request; None if it passes.
    drops: Callable[[Entry, Request, HostFacts], str | None]
    #: False only when no member of the pool can pass ``drops``.
    pool_may_pass: Callable[[Pool, Request], bool] | None = None
    #: ``pool_may_pass`` depends on the request's specs alone, so its
    #: verdict may be kept per flavor.
    per_flavor: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class StateFilter:
    """One step of the ``state`` filter: why a device is not free now,
    whatever is asked."""

    name: str
    drops: Callable[[PciDevice, HostFacts], str | None]


def _held(dev: PciDevice, facts: HostFacts) -> str | None:
    holder = facts.holdings.held.get(dev.address)
    if holder is None:
        return None
    return (f"in use by instance {holder.instance_uuid} port "
            f"{holder.port_index}")


def _unhealthy(dev: PciDevice, facts: HostFacts) -> str | None:
    return facts.health.reason(dev)


def _journalled(dev: PciDevice, facts: HostFacts) -> str | None:
    if dev.address not in facts.holdings.journalled:
        return None
    return ("its netdev's state from before its last plug is not "
            "restored yet (pci-passthrough doctor --fix restores it)")


def _pf_held(dev: PciDevice, facts: HostFacts) -> str | None:
    pf = dev.parent_addr
    holder = facts.holdings.held.get(pf) if pf else None
    if holder is None:
        return None
    return (f"unavailable: its PF {pf} is in use by instance "
            f"{holder.instance_uuid}")


def _vfs_held(dev: PciDevice, facts: HostFacts) -> str | None:
    count = facts.holdings.held_vfs_of.get(dev.address)
    if not count:
        return None
    return f"unavailable: {count} of its VFs are in use"


#: Why a device is not free now; the ``state`` filter, step by step.
STATE_CHAIN: tuple[StateFilter, ...] = (
    StateFilter("held", _held),
    StateFilter("unhealthy", _unhealthy),
    StateFilter("journalled", _journalled),
    StateFilter("pf-held", _pf_held),
    StateFilter("vfs-held", _vfs_held),
)


def state_drop(dev: PciDevice, facts: HostFacts
               ) -> tuple[StateFilter, str] | None:
    """The state filter that finds ``dev`` not free now, with why; None
    when it is free."""
    for step in STATE_CHAIN:
        reason = step.drops(dev, facts)
        if reason is not None:
            return step, reason
    return None


def _attributes(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    return first_mismatch(req.specs, entry.attrs, req.special)


def _pool_attributes(pool: Pool, req: Request) -> bool:
    # A pool's members differ in their address alone: it is left to them.
    return first_mismatch(req.specs, pool.attrs, req.special,
                          ignore=("address",)) is None


def _state(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    dev = entry.device
    for drops in _STATE_DROPS:
        why = drops(dev, facts)
        if why is not None:
            return why
    return None


def _pool_state(pool: Pool, req: Request) -> bool:
    return bool(pool.free)


def _taken(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    if not req.taken:
        return None
    dev = entry.device
    if dev.address in req.taken:
        return "taken by an earlier port of this request"
    # A claim never holds a PF together with one of its VFs.
    if dev.parent_addr is not None and dev.parent_addr in req.taken:
        return (f"its PF {dev.parent_addr} is taken by an earlier port "
                f"of this request")
    for vf, pf in req.taken.items():
        if pf == dev.address:
            return (f"its VF {vf} is taken by an earlier port of this "
                    f"request")
    return None


def _netdev(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    dev = entry.device
    if not req.needs_netdev or (dev.dev_type == DEV_TYPE_VF
                                and dev.netdev is not None):
        return None
    if dev.dev_type != DEV_TYPE_VF:
        return "not a VF, so it cannot back a macvtap interface"
    return (f"no netdev (bound to {dev.driver or 'no driver'}), so it "
            f"cannot back a macvtap interface")


def _pool_netdev(pool: Pool, req: Request) -> bool:
    return not req.needs_netdev or (pool.dev_type == DEV_TYPE_VF
                                    and pool.has_netdev)


def _numa(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    return numa_mismatch(req.policy, entry.device.numa_node, req.cells)


def _pool_numa(pool: Pool, req: Request) -> bool:
    return numa_mismatch(req.policy, pool.numa_node, req.cells) is None


def _allocated(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    if req.allowed is None or entry.device.address in req.allowed:
        return None
    return "not among the devices allocated to the port"


#: The chain, in the order its reasons are given.
CHAIN: tuple[Filter, ...] = (
    Filter("attributes", _attributes, _pool_attributes, per_flavor=True),
    Filter("state", _state, _pool_state),
    Filter("taken", _taken),
    Filter("netdev", _netdev, _pool_netdev),
    Filter("numa", _numa, _pool_numa),
    Filter("allocated", _allocated),
)


# The chains' functions alone: they run for every device explain shows.
_STATE_DROPS = tuple(step.drops for step in STATE_CHAIN)
_DROPS = tuple(step.drops for step in CHAIN)
_POOL_CHECKS = {
    per_flavor: tuple(step.pool_may_pass for step in CHAIN
                      if step.pool_may_pass is not None
                      and step.per_flavor == per_flavor)
    for per_flavor in (True, False)}


def why_not(entry: Entry, req: Request, facts: HostFacts) -> str | None:
    """Why the device cannot serve the request (the first filter's
    reason); None if it can."""
    for drops in _DROPS:
        why = drops(entry, req, facts)
        if why is not None:
            return why
    return None


def pool_may_serve(pool: Pool, req: Request, *, per_flavor: bool) -> bool:
    """False when no member of ``pool`` can serve ``req``, judged by the
    pool checks that depend on the request's specs alone
    (``per_flavor``) or by the others."""
    return all(may_pass(pool, req) for may_pass in _POOL_CHECKS[per_flavor])
