"""This host's per-port networks as the agent's services see them: their
names, the network a claim's port should have, and the driver's steps,
whose failures come back as NetworkDriverError naming the instance, the
port and the network."""

import dataclasses
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.model.claims import Allocation
from pci_passthrough.network.base import NetworkDriver, NetworkSpec
from pci_passthrough.network.names import network_name

LOG = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class HostNetworks:
    """The networks named ``<prefix><instance uuid>-<port>`` and the
    driver that defines them.

    :param prefix: option network_name_prefix.
    :param driver: the network driver in use.
    """

    def __init__(self, prefix: str, driver: NetworkDriver) -> None:
        self._prefix = prefix
        self._driver = driver

    @property
    def prefix(self) -> str:
        """A network is ours when its whole name parses with it."""
        return self._prefix

    @property
    def driver(self) -> NetworkDriver:
        return self._driver

    def name(self, instance_uuid: str, port_index: int) -> str:
        """The network of one port of an instance."""
        return network_name(self._prefix, instance_uuid, port_index)

    def named(self, allocs: list[Allocation]) -> list[Allocation]:
        """The claims with the names of their ports' networks."""
        return [dataclasses.replace(a, network=self.name(
            a.instance_uuid, a.port_index)) for a in allocs]

    def spec(self, alloc: Allocation) -> NetworkSpec:
        """The network a claim's port should have.

        :raises NetworkDriverError: the device has no netdev.
        """
        name = self.name(alloc.instance_uuid, alloc.port_index)
        if not alloc.netdev:
            raise exception.NetworkDriverError(
                network=name, instance=alloc.instance_uuid,
                port=alloc.port_index,
                reason=f"device {alloc.address} has no netdev to back a "
                       f"macvtap interface")
        return NetworkSpec(name=name, netdev=alloc.netdev, vlan=alloc.vlan)

    def ensure(self, instance_uuid: str, port: int | str,
               spec: NetworkSpec) -> None:
        """Define and start a port's network as ``spec`` says."""
        self.call(instance_uuid, port, spec.name,
                  self._driver.ensure_network, spec)

    def delete(self, instance_uuid: str, port: int | str,
               name: str) -> None:
        """Remove a port's network (nothing when it is gone already)."""
        self.call(instance_uuid, port, name, self._driver.delete_network,
                  name)

    def call(self, instance_uuid: str, port: int | str, name: str,
             fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a driver step; any failure, a plugin's raw exception
        included, becomes a NetworkDriverError naming the instance, the
        port and the network, logged with its traceback."""
        try:
            return fn(*args, **kwargs)
        except exception.NetworkDriverError:
            raise
        except exception.PciPassthroughError as exc:
            # The driver's own error already says what failed; the caller
            # gets it, wrapped.
            LOG.debug("Network %s of instance %s port %s failed", name,
                      instance_uuid, port, exc_info=True)
            raise exception.NetworkDriverError(
                network=name, instance=instance_uuid, port=port,
                reason=str(exc).rstrip(".")) from exc
        except Exception as exc:
            # A plugin's raw exception: its traceback is the only clue.
            LOG.error("Network driver %s failed on network %s of instance "
                      "%s port %s", type(self._driver).__name__, name,
                      instance_uuid, port, exc_info=True)
            raise exception.NetworkDriverError(
                network=name, instance=instance_uuid, port=port,
                reason=f"the network driver raised "
                       f"{type(exc).__name__}: {exc}") from exc
