"""What doctor needs of the parts of a host's agent, as protocols.

The doctor room is below the agent: HostAgent passes its own parts in,
which satisfy these by their methods alone.
"""

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

from pci_passthrough.hygiene.record import NetdevState
from pci_passthrough.model.claims import Allocation
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import NetworkDriver, NetworkSpec
from pci_passthrough.placement.tree import ProviderTree


class Networks(Protocol):
    """The host's per-port networks and their driver."""

    @property
    def prefix(self) -> str:
        """A network is ours when its whole name parses with it."""

    @property
    def driver(self) -> NetworkDriver: ...

    def spec(self, alloc: Allocation) -> NetworkSpec:
        """The network a claim's port should have."""

    def ensure(self, instance_uuid: str, port: int | str,
               spec: NetworkSpec) -> None: ...

    def delete(self, instance_uuid: str, port: int | str,
               name: str) -> None: ...


class Leases(Protocol):
    """The host's migration leases."""

    @property
    def timeout(self) -> int:
        """How long a lease lasts, in seconds."""

    def expired(self, state: PortState) -> list[str]:
        """Instances whose ports are all in ``state`` and whose lease
        ran out."""

    def overdue(self) -> list[str]:
        """Incoming migrations whose lease ran out but is kept (their
        domain exists here, or cannot be told)."""

    def expire(self, instance: str) -> bool:
        """End an expired incoming migration; False when it was
        confirmed or ended meanwhile."""

    def ahead(self) -> dict[str, float]:
        """Instances whose lease starts ahead of the wall clock: by how
        many seconds."""

    def restart(self, instance: str) -> bool:
        """Restart a lease that starts ahead of the wall clock now;
        False when it ended or is not ahead any more."""


class Journals(Protocol):
    """The host's VF hygiene."""

    def restore(self, address: str, journal: NetdevState) -> str | None:
        """Restore a journalled VF netdev state; None, or why not."""


class InstanceLocks(Protocol):
    """Serialises the operations on one instance."""

    def instance(self, method: str, instance_uuid: str
                 ) -> AbstractContextManager[None]: ...


class Placement(Protocol):
    """The host as Placement sees it."""

    def default_nodename(self) -> str: ...

    def tree(self, nodename: str | None = None) -> ProviderTree: ...

    def flavor_traits(self) -> Collection[str]: ...

    def flavor_classes(self) -> Collection[str]: ...

    def remember_providers(self, nodename: str,
                           uuids: Mapping[str, str]) -> None:
        """The UUIDs Placement gave the host's providers, by name."""
