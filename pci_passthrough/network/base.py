"""The network driver plugin contract."""

import abc
import dataclasses
from typing import ClassVar

from lxml import etree
from oslo_config import cfg


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkSpec:
    """One per-instance network: its name and the one netdev it holds."""

    name: str
    netdev: str
    vlan: int | None = None


class NetworkDriver(abc.ABC):
    """Makes and removes the per-instance single-interface networks.

    Every method is idempotent: a repeated call, or a call after a crash
    part-way through the previous one, converges to the same state.

    :param conf: a parsed ConfigOpts with the [pci_passthrough] options
        (and this driver's CONFIG_OPTS) registered.
    """

    #: Options of this driver; they join the [pci_passthrough] group.
    CONFIG_OPTS: ClassVar[list[cfg.Opt]] = []

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def ensure_network(self, spec: NetworkSpec) -> bool:
        """Define, start and autostart the network.

        A network of that name holding another netdev or VLAN is rewritten.

        :returns: True when anything changed.
        :raises NetworkOperationFailed: with the backend's message.
        """

    @abc.abstractmethod
    def delete_network(self, name: str) -> bool:
        """Stop and undefine the network.

        :returns: True when something was removed, False when it was not
            there.
        :raises NetworkOperationFailed: with the backend's message.
        """

    @abc.abstractmethod
    def list_networks(self, prefix: str) -> dict[str, NetworkSpec]:
        """Every network whose name starts with ``prefix``; no other
        network is ever reported or touched."""

    def vlan_refusal(self) -> str | None:
        """Why this driver, as configured, cannot put a port on a VLAN;
        None when it can.  A request with a VLAN is refused at claim, before
        anything is recorded, when this says why."""
        return None

    def interface_xml(self, network: str, mac: str | None) -> str:
        """The guest's ``<interface type='network'>`` referring to the
        network by name, for the domain XML."""
        iface = etree.Element("interface", type="network")
        if mac:
            etree.SubElement(iface, "mac", address=mac)
        etree.SubElement(iface, "source", network=network)
        etree.SubElement(iface, "model", type="virtio")
        return etree.tostring(iface, encoding="unicode")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the driver may be used again after."""
