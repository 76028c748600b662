"""Live migrations on both ends: the destination claims and plugs
before the guest arrives, under a lease that ends when the migration is
confirmed or aborted (or expires, see Leases); the source marks its
ports outgoing until the migration completes or aborts."""

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.ports import PluggedPort, Ports
from pci_passthrough.ledger import LeaseStart
from pci_passthrough.model.claims import Allocation, PortRequest
from pci_passthrough.model.states import PortState
from pci_passthrough.tracker import HostTracker

if TYPE_CHECKING:
    from pci_passthrough.metrics import Metrics

LOG = logging.getLogger(__name__)


class Migrations:
    """What HostAgent's migration methods of the same names do; the
    caller serialises the calls on one instance.

    :param clock: reads the start of an outgoing lease.
    :param lease_timeout: option incoming_migration_timeout, in seconds.
    """

    def __init__(self, *, tracker: HostTracker, ports: Ports,
                 networks: HostNetworks, metrics: "Metrics",
                 clock: Callable[[], LeaseStart],
                 lease_timeout: int) -> None:
        self._tracker = tracker
        self._ports = ports
        self._networks = networks
        self._metrics = metrics
        self._clock = clock
        self._lease_timeout = lease_timeout

    # -- on the destination -------------------------------------------------

    def prepare_incoming(self, instance_uuid: str,
                         ports: Sequence[PortRequest],
                         numa_cells: Collection[int] | None = None, *,
                         allocation: Mapping[Any, Any] | None = None,
                         provider_mapping: Mapping[str, Any] | None = None,
                         unplaced: Collection[str] = ()
                         ) -> list[PluggedPort]:
        with self._metrics.time_incoming_migration_prepare():
            held = {a.port_index for a in
                    self._tracker.allocations(instance_uuid)}
            try:
                self._ports.claim_devices(
                    instance_uuid, ports, numa_cells, allocation,
                    incoming=True, provider_mapping=provider_mapping,
                    unplaced=unplaced)
            except (exception.ClaimFailed,
                    exception.InvalidPortRequest) as exc:
                raise exception.MigrationRefused(
                    instance=instance_uuid,
                    reason=str(exc).rstrip(".")) from exc
            fresh = {p.index for p in ports} - held
            try:
                return self._ports.plug_networks(instance_uuid, fresh)
            except BaseException:
                if not held:
                    # Everything here was made by this call: undo it all.
                    # The caller gets the plug's error, not the undo's.
                    try:
                        self._ports.unplug(instance_uuid)
                    except Exception:
                        LOG.exception("Cannot undo the claims of incoming "
                                      "instance %s; abort_incoming_"
                                      "migration retries", instance_uuid)
                raise

    def complete_incoming(self, instance_uuid: str) -> list[Allocation]:
        allocs = self._tracker.allocations(instance_uuid)
        if not allocs:
            raise exception.MigrationNotPrepared(
                instance=instance_uuid,
                reason="it holds no claim here: never prepared, "
                       "aborted, or its lease expired after "
                       f"{self._lease_timeout} s (option "
                       f"incoming_migration_timeout)")
        if all(a.state == PortState.PLUGGED for a in allocs):
            return self._networks.named(allocs)
        done = self._tracker.transition(instance_uuid, PortState.PLUGGED)
        if any(a.state == PortState.INCOMING for a in allocs):
            self._metrics.incoming_migration_ended("completed")
        return self._networks.named(done)

    def abort_incoming(self, instance_uuid: str) -> None:
        freed = self._ports.unplug(instance_uuid)
        if freed:
            self._metrics.released()
        if any(a.state == PortState.INCOMING for a in freed):
            self._metrics.incoming_migration_ended("aborted")

    # -- on the source ------------------------------------------------------

    def begin_outgoing(self, instance_uuid: str) -> list[Allocation]:
        if not self._tracker.allocations(instance_uuid):
            return []
        return self._networks.named(self._tracker.transition(
            instance_uuid, PortState.OUTGOING, lease_started=self._clock()))

    def abort_outgoing(self, instance_uuid: str) -> list[PluggedPort]:
        if not self._tracker.allocations(instance_uuid):
            return []
        self._tracker.transition(instance_uuid, PortState.PLUGGED)
        return self._ports.plug_networks(instance_uuid)

    def complete_outgoing(self, instance_uuid: str) -> None:
        self._ports.release(instance_uuid)
