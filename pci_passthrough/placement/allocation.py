"""Which of this host's VFs a Placement allocation lets a port take.

The scheduler allocated, per port (a request group), one unit on a PF
provider; the host must take its VF from exactly that provider.  This
module checks that an allocation fits the host's tree before anything
is claimed; the claim itself then chooses among the VFs it returns.
"""

from collections.abc import Mapping, Sequence

from pci_passthrough import exception
from pci_passthrough.placement.tree import PciProvider, ProviderTree


def port_providers(tree: ProviderTree, instance: str,
                   provider_uuids: Mapping[str, str],
                   per_port: Sequence[str]) -> list[PciProvider]:
    """The provider each port's VF must come from.

    :param provider_uuids: this host's provider names -> Placement UUIDs.
    :param per_port: the provider UUID allocated to each port (from the
        allocation request's mappings: one per request group).
    :raises AllocationMismatch: a UUID is not a provider of this host, or
        more ports than it has VFs are put on one provider.
    """
    by_uuid = {uuid: name for name, uuid in provider_uuids.items()}
    providers = tree.by_name()
    chosen = []
    for port, uuid in enumerate(per_port):
        name = by_uuid.get(uuid)
        if name is None or name not in providers:
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"port {port} was allocated on provider {uuid}, "
                       f"which is not one of this host's "
                       f"({tree.nodename}) PF providers")
        chosen.append(providers[name])
    for provider in set(chosen):
        wanted = chosen.count(provider)
        if wanted > provider.total - provider.reserved:
            raise exception.AllocationMismatch(
                instance=instance,
                reason=f"{wanted} ports were allocated on {provider.name}"
                       f", which has {provider.total - provider.reserved} "
                       f"usable VFs")
    return chosen
