"""SriovPlugin's calls in a live migration of an instance with macvtap
ports: kept apart so that each part stays readable; SriovPlugin is the
only class that mixes it in."""

from collections.abc import Mapping
from typing import Any

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.nova import placed_ports
from pci_passthrough.nova import ports as nova_ports
from pci_passthrough.nova._refusals import refused_as


class MigrationCalls:
    """port_slots on the source, prepare_incoming_migration on the
    destination, then the begin, complete and abort calls on each."""

    _agent: HostAgent | None
    _policy: nova_ports.PortPolicy | None

    def port_slots(self, instance: Any) -> dict[str, int]:
        """On the source: the slot of each port (the index in its
        network's name), for the destination to claim in the same
        slots."""
        agent, _ = self._started("port_slots")
        return agent.port_slots(instance.uuid)

    def prepare_incoming_migration(
            self, instance: Any, network_info: Any, slots: Any,
            allocations: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """On the destination, before the migration: a VF for each
        port, leased, and its network under the name the guest uses;
        the binding profile of each port here, by port UUID.
        Idempotent (pre_live_migration may call it again).

        A port the scheduler placed here (nova's conductor wrote the
        destination's providers in the instance's PCI requests) takes a
        VF of the PF provider its unit was allocated on.

        :param slots: the source's port_slots().
        :param allocations: the instance's allocation in Placement,
            which is the destination's while it migrates.
        :raises nova.exception.MigrationPreCheckError: this host cannot
            serve the ports; nothing is claimed or defined here.
        """
        agent, policy = self._started("prepare_incoming_migration")
        with refused_as("MigrationPreCheckError", "SR-IOV ports"):
            if not isinstance(slots, Mapping):
                raise exception.InvalidPortRequest(
                    port="-", reason=f"the source's slots are not a dict: "
                                     f"{slots!r:.60}")
            requests = nova_ports.port_requests(
                network_info, instance, policy, slots=dict(slots))
            ours = {r.port_id for r in requests}
            pci_requests = [
                r for r in _pci_requests(instance)
                if nova_ports.port_id_of_request(r) in ours]
            placement = placed_ports.placement_arguments(
                instance, pci_requests, allocations)
            agent.prepare_incoming_migration(instance.uuid, requests,
                                             **placement)
        return {r.port_id: agent.binding_profile(instance.uuid, r.port_id)
                for r in requests if r.port_id is not None}

    def begin_outgoing_migration(self, instance: Any) -> None:
        """On the source, as the migration starts."""
        agent, _ = self._started("begin_outgoing_migration")
        agent.begin_outgoing_migration(instance.uuid)

    def complete_incoming_migration(self, instance: Any) -> None:
        """On the destination, once the guest runs here: its claims
        become plain ones.

        :raises MigrationNotPrepared: the instance holds nothing here
            (its lease ran out and was expired): its VFs here are no
            longer held for it.
        """
        agent, _ = self._started("complete_incoming_migration")
        agent.complete_incoming_migration(instance.uuid)

    def complete_outgoing_migration(self, instance: Any) -> None:
        """On the source, once the guest left: its networks here go and
        its VFs are restored and freed."""
        agent, _ = self._started("complete_outgoing_migration")
        agent.complete_outgoing_migration(instance.uuid)

    def abort_incoming_migration(self, instance: Any) -> None:
        """On the destination, after a failed migration: what prepare
        claimed and defined here goes."""
        agent, _ = self._started("abort_incoming_migration")
        agent.abort_incoming_migration(instance.uuid)

    def abort_outgoing_migration(self, instance: Any) -> None:
        """On the source, after a failed migration: the ports are plugged
        here again."""
        agent, _ = self._started("abort_outgoing_migration")
        agent.abort_outgoing_migration(instance.uuid)

    def _started(self, call: str
                 ) -> tuple[HostAgent, nova_ports.PortPolicy]:
        """The started agent and port policy, for a call named ``call``.

        :raises PluginNotStarted: before init_host, after cleanup_host.
        """
        agent, policy = self._agent, self._policy
        if agent is None or policy is None:
            raise exception.PluginNotStarted(method=call)
        return agent, policy


def _pci_requests(instance: Any) -> list[Any]:
    """The instance's PCI requests that name a port."""
    requests = getattr(getattr(instance, "pci_requests", None),
                       "requests", None) or []
    return [r for r in requests
            if getattr(r, "requester_id", None) is not None]
