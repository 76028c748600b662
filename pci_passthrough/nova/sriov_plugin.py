"""The SR-IOV port plugin of the nova-compute fork's libvirt driver.

The fork loads it through stevedore, as the entry point
``pci_passthrough`` of the namespace ``nova.virt.libvirt.sriov_plugin``
(the fork's ``[sriov_plugin]`` options), constructs it with
nova-compute's configuration and calls it where its libvirt driver
handles the host's life cycle, reports its resources and serves the
macvtap ports of its instances. The plugin keeps the host's HostAgent.

A macvtap port's life, as the fork calls the plugin:

1. ``claim_instance`` at nova's resource claim, from the PCI requests
   nova made for the ports (their UUIDs, physical networks and trusted):
   a VF per port, all or nothing;
2. ``binding_profile`` for each port as nova binds it in Neutron: the
   VF the library claimed, so Neutron and the guest name the same VF;
3. ``network_name`` as the driver writes the guest's interface: a
   ``type='network'`` interface on the port's own network;
4. ``plug_vifs`` before the guest starts: the MAC and VLAN Neutron bound
   the ports with are recorded and the networks defined and started;
5. ``release_instance`` once nova frees the instance's resources.

A live migration: ``port_slots`` on the source (carried in nova's
migrate data), ``prepare_incoming_migration`` on the destination (its
VFs, leased, and networks of the same names; the ports' destination
binding profiles), ``begin_outgoing_migration`` as it starts, then
``complete_incoming_migration`` and ``complete_outgoing_migration``, or
``abort_incoming_migration`` and ``abort_outgoing_migration``.
"""

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.config import opts
from pci_passthrough.nova import placed_ports, request_groups
from pci_passthrough.nova import ports as nova_ports
from pci_passthrough.nova._migration_calls import MigrationCalls
from pci_passthrough.nova._refusals import refused_as
from pci_passthrough.placement import requests as placement_requests

LOG = logging.getLogger(__name__)


class SriovPlugin(MigrationCalls):
    """One compute host's SR-IOV ports, for nova's libvirt driver.

    :param conf: nova-compute's configuration, already parsed; the
        library's ``[pci_passthrough]`` options are registered on it
        here and read from the files it parsed.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        opts.register_opts(conf)
        self._conf = conf
        self._agent = None
        self._policy = None

    @property
    def agent(self) -> HostAgent | None:
        """The host's agent, from init_host until cleanup_host."""
        return self._agent

    def init_host(self, host: str) -> None:
        """As the compute service starts: check the configuration, scan
        the host, load the ledger and reconcile the networks
        (HostAgent.start()); an error stops the service."""
        self.cleanup_host(host)
        # Settings are read here, not at construction: they are the
        # configuration as the service starts.
        agent = HostAgent(self._conf)
        try:
            report = agent.start()
        except BaseException:
            agent.close()
            raise
        self._agent = agent
        self._policy = nova_ports.PortPolicy.from_conf(self._conf)
        LOG.info("SR-IOV ports of host %s: %d devices, %d claims, %d "
                 "networks repaired, %d scan errors", host, report.devices,
                 report.allocations, len(report.actions),
                 len(report.scan_errors))

    def cleanup_host(self, host: str) -> None:
        """As the compute service stops: close the agent (its ledger and
        its libvirt connection)."""
        agent, self._agent = self._agent, None
        self._policy = None
        if agent is not None:
            LOG.info("Closing the SR-IOV port agent of host %s", host)
            agent.close()

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: dict[str, Any] | None = None
                             ) -> None:
        """From the driver's ``update_provider_tree``: this host's PF
        providers in nova's ``ProviderTree`` (HostAgent.
        update_provider_tree), beside nova's own.

        :raises nova.exception.ReshapeNeeded: providers of the host are
            under their former names and ``allocations`` were not given:
            at service start nova then calls again with every consumer's
            allocations, and their units move to the new names.
        """
        agent = self._agent
        if agent is None:
            return
        update = agent.update_provider_tree(provider_tree, nodename,
                                            allocations)
        if update.reshape_needed:
            LOG.info("SR-IOV providers %s of node %s are under their "
                     "former names: their allocations move to the new "
                     "ones", ", ".join(update.reshape_needed), nodename)
            # Only ever loaded by nova: its exception is there to raise.
            nova_exception = importlib.import_module("nova.exception")
            raise nova_exception.ReshapeNeeded()
        for former, name in update.renamed:
            LOG.info("SR-IOV provider %s of node %s is now %s", former,
                     nodename, name)

    def heal_allocations(self, provider_tree: Any, nodename: str,
                         allocations: dict[str, Any]) -> bool:
        """At service start, with every consumer's allocations on this
        host's tree as nova read them (before this call reads the
        ledger): each instance's units on the plugin's providers made
        the ledger's, in place, as ``pci-passthrough placement sync``
        heals them (a claim whose Placement write a crash cut short);
        consumers Placement does not have, and instances being live
        migrated, are left alone.  True when any changed: nova then
        writes ``allocations`` (POST /reshaper), as it heals its own PCI
        allocations."""
        agent = self._agent
        if agent is None:
            return False
        update = agent.update_provider_tree(provider_tree, nodename,
                                            allocations)
        for consumer in update.healed:
            LOG.warning("Instance %s: its SR-IOV units in Placement are "
                        "made the ledger's", consumer)
        return bool(update.healed or update.renamed)

    # -- an instance's macvtap ports ---------------------------------------

    def serves(self, vif: Any) -> bool:
        """Whether the port is the plugin's (a macvtap port)."""
        return nova_ports.is_ours(vif)

    def request_group(self, pci_request: Any, flavor: Any
                      ) -> dict[str, Any] | None:
        """Where nova makes the request groups of an instance's PCI
        requests (nova-api, nova-conductor; no init_host there): the
        group of a port's request, in nova's RequestGroup terms
        (``resources``, ``required_traits``, ``forbidden_traits``), or
        None when its PCI flavor cannot be one group
        (pci_passthrough.nova.request_groups).

        :param flavor: the instance's nova flavor.
        :raises InvalidPortRequest: the request or the PCI flavor its
            extra spec names is malformed.
        :raises ConfigError: the library's options are not valid here.
        """
        group = request_groups.port_group(pci_request, flavor,
                                          self._port_policy())
        if group is None:
            return None
        return {"resources": group.resources,
                "required_traits": set(group.required),
                "forbidden_traits": set(group.forbidden)}

    def placement_traits(self) -> frozenset[str]:
        """The custom traits the ports' request groups may name, which
        Placement must know before a query names them (forbidden ones
        included): nova's report client ensures them."""
        return placement_requests.flavor_traits(self._port_policy().flavors)

    def _port_policy(self) -> nova_ports.PortPolicy:
        """The started host's policy; unstarted (nova-api,
        nova-conductor), read from the configuration on each call."""
        return self._policy or nova_ports.PortPolicy.from_conf(self._conf)

    def claim_instance(self, instance: Any, pci_requests: Sequence[Any],
                       nodename: str,
                       allocations: Mapping[str, Any] | None = None
                       ) -> list[str]:
        """At nova's resource claim: a VF for each port nova's PCI
        requests name, all or nothing (a claim repeated claims nothing
        twice); the VFs' addresses, in the requests' order.

        A port the scheduler placed (its request's ``rp_uuids``) takes
        a VF of the PF provider its unit was allocated on.

        :param pci_requests: the instance's PCI requests of the plugin's
            ports (``InstancePCIRequest``: ``requester_id`` the port's
            UUID, ``spec`` its physical network and trusted).
        :param allocations: the instance's allocation in Placement
            ({provider UUID: {"resources": ...}}): required when a port
            was placed.
        :raises nova.exception.ComputeResourcesUnavailable: this host
            cannot serve the ports (nova reschedules); nothing is
            claimed.
        """
        agent, policy = self._started("claim_instance")
        with refused_as("ComputeResourcesUnavailable",
                         f"SR-IOV ports on node {nodename}"):
            requests = [nova_ports.pci_port_request(r, instance, policy)
                        for r in pci_requests]
            placement = placed_ports.placement_arguments(
                instance, pci_requests, allocations)
            claims = agent.claim(instance.uuid, requests, **placement)
        by_port = {c.port_id: c.address for c in claims}
        return [by_port[r.port_id] for r in requests]

    def unallocated_resources(self, instance: Any,
                              allocations: Mapping[str, Any] | None
                              ) -> dict[str, dict[str, dict[str, int]]]:
        """What the instance's VFs here take in Placement beyond
        ``allocations`` (the instance's, as nova read it): the units of
        the ports the scheduler did not place, in nova's allocation
        request form, for nova to add."""
        missing = {}
        for uuid, entry in self.placement_resources(instance).items():
            held = _units(allocations, uuid)
            units = {rc: n - held.get(rc, 0)
                     for rc, n in entry["resources"].items()
                     if n > held.get(rc, 0)}
            if units:
                missing[uuid] = {"resources": units}
        return missing

    def placement_resources(self, instance: Any, port_id: str | None = None
                            ) -> dict[str, dict[str, dict[str, int]]]:
        """What the instance's VFs here (or one port's) take in
        Placement, in nova's allocation request form: {provider UUID:
        {"resources": {resource class: units}}}; nova adds it to the
        instance's allocation once claimed, removes a port's at its
        detach."""
        agent, _ = self._started("placement_resources")
        return {uuid: {"resources": units} for uuid, units in
                agent.placement_resources(instance.uuid, port_id).items()}

    def binding_profile(self, instance: Any, port_id: str
                        ) -> dict[str, Any]:
        """The binding profile's VF fields of a claimed port (pci_slot,
        pci_vendor_info, physical_network, pf_mac_address, vf_num), as
        nova writes them from a device it claimed."""
        agent, _ = self._started("binding_profile")
        return agent.binding_profile(instance.uuid, port_id)

    def network_name(self, instance: Any, vif: Any) -> str:
        """The libvirt network the guest's interface for this VIF names
        (``<interface type='network'><source network=...>``).

        :raises InvalidPortRequest: the port holds no claim here.
        """
        agent, _ = self._started("network_name")
        slots = agent.port_slots(instance.uuid)
        port_id = nova_ports.port_id_of(vif)
        if port_id not in slots:
            raise exception.InvalidPortRequest(
                port=port_id, reason=f"instance {instance.uuid} holds no "
                                     f"claim for it here")
        return agent.network_name(instance.uuid, slots[port_id])

    def plug_vifs(self, instance: Any, network_info: Any) -> None:
        """Before the guest starts (spawn, hard reboot): record the MAC
        and VLAN Neutron bound each port with, then define and start
        the instance's networks.  Idempotent.

        :raises NetworkDriverError: a network could not be made; those
            this call made are removed again.
        """
        agent, policy = self._started("plug_vifs")
        for request in nova_ports.port_requests(network_info, instance,
                                                policy):
            assert request.port_id is not None
            agent.bind_port(instance.uuid, request.port_id,
                            mac=request.mac, vlan=request.vlan)
        agent.plug(instance.uuid)

    def release_instance(self, instance: Any) -> None:
        """As nova frees the instance's resources (deleted, or its
        claim aborted): delete its networks, restore its VFs and free
        them.  Nothing to do for an instance holding nothing here."""
        agent, _ = self._started("release_instance")
        freed = agent.release(instance.uuid)
        if freed:
            LOG.info("Instance %s freed %s", instance.uuid,
                     ", ".join(a.address for a in freed))

    # -- attach and detach interface ---------------------------------------

    def claim_port(self, instance: Any, pci_request: Any,
                   nodename: str) -> str:
        """interface attach, where nova claims the port's device: a VF
        for the port its PCI request names; its address.

        :raises nova.exception.ComputeResourcesUnavailable: no VF here
            serves it; nothing is claimed.
        """
        agent, policy = self._started("claim_port")
        with refused_as("ComputeResourcesUnavailable",
                         f"SR-IOV port on node {nodename}"):
            request = nova_ports.pci_port_request(pci_request, instance,
                                                  policy)
            return agent.claim_port(instance.uuid, request).address

    def plug_port(self, instance: Any, vif: Any) -> None:
        """The driver's attach_interface, before the interface is
        attached: record the MAC and VLAN Neutron bound the port with,
        then define and start its network.

        :raises NetworkDriverError: its network could not be made; one
            this call made is removed again.
        """
        agent, policy = self._started("plug_port")
        request = nova_ports.port_request(vif, instance, policy)
        if request is None or request.port_id is None:
            raise exception.InvalidPortRequest(
                port=nova_ports.port_id_of(vif),
                reason="it is not a macvtap port")
        agent.bind_port(instance.uuid, request.port_id, mac=request.mac,
                        vlan=request.vlan)
        agent.plug_port(instance.uuid, request.port_id)

    def release_port(self, instance: Any, port_id: str) -> None:
        """Once the port is detached (or its attach failed): delete its
        network, restore its VF and free it; the instance's other ports
        keep theirs."""
        agent, _ = self._started("release_port")
        agent.release_port(instance.uuid, port_id)

    def update_available_resource(self, nodename: str) -> None:
        """From nova's periodic resource update: rescan the host and
        reconcile what changed (HostAgent.refresh())."""
        agent = self._agent
        if agent is not None:
            agent.refresh()


def _units(allocations: Any, uuid: str) -> dict[str, int]:
    """The units nova's allocation ({provider UUID: {"resources":
    ...}}) holds on one provider; what is not a count is none."""
    entry = allocations.get(uuid) if isinstance(allocations, Mapping) \
        else None
    resources = entry.get("resources") if isinstance(entry, Mapping) \
        else None
    if not isinstance(resources, Mapping):
        return {}
    return {rc: n for rc, n in resources.items()
            if type(n) is int and n > 0}
