"""The network driver plugin contract."""

import abc
import dataclasses
import enum
from typing import ClassVar

from lxml import etree
from oslo_config import cfg


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkSpec:
    """One per-instance network: its name and the one netdev it holds."""

    name: str
    netdev: str
    vlan: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NetworkStatus:
    """What doctor compares with the ledger: the network as found."""

    spec: NetworkSpec
    #: Every netdev the network holds (ours hold exactly one).
    netdevs: tuple[str, ...]
    active: bool = True
    persistent: bool = True
    autostart: bool = True
    #: The forward mode; None when the driver does not tell.
    mode: str | None = None

    def problems(self, expected: NetworkSpec,
                 mode: str | None) -> list[str]:
        """How the network differs from ``expected`` in forward ``mode``
        (None: any mode), in words; empty when it does not."""
        found = []
        if self.netdevs != (expected.netdev,):
            found.append(f"holds {', '.join(self.netdevs) or 'no netdev'}"
                         f" instead of {expected.netdev}")
        if self.spec.vlan != expected.vlan:
            found.append(f"VLAN {_vlan(self.spec.vlan)} instead of "
                         f"{_vlan(expected.vlan)}")
        if mode is not None and self.mode != mode:
            found.append(f"forward mode {self.mode} instead of {mode}")
        return found

    def inactive(self) -> list[str]:
        """What keeps the network from carrying the guest after a
        restart of the host or of libvirt."""
        return [what for what, ok in (
            ("inactive", self.active), ("not persistent", self.persistent),
            ("not autostarted", self.autostart)) if not ok]


class DomainPresence(enum.Enum):
    """Whether the hypervisor has an instance's domain, as a migration
    lease needs to know: only ABSENT lets an incoming lease end."""

    #: It exists (running, paused, or arriving by live migration).
    PRESENT = "present"
    #: The hypervisor answered that it has none.
    ABSENT = "absent"
    #: No answer: the hypervisor could not be reached, or the driver
    #: cannot tell.
    UNKNOWN = "unknown"


def _vlan(vlan: int | None) -> str:
    return "none" if vlan is None else str(vlan)


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

    def network_status(self, prefix: str) -> dict[str, NetworkStatus]:
        """Every network whose name starts with ``prefix``, as found.

        The default tells only what list_networks() tells: a driver that
        can see whether a network is active, and its mode, overrides it.
        """
        return {name: NetworkStatus(spec, (spec.netdev,))
                for name, spec in self.list_networks(prefix).items()}

    def forward_mode(self) -> str | None:
        """The mode this driver writes networks in; None when it has
        none to compare."""
        return None

    def vlan_refusal(self) -> str | None:
        """Why this driver, as configured, cannot put a port on a VLAN;
        None when it can.  A request with a VLAN is refused at claim, before
        anything is recorded, when this says why."""
        return None

    def domain_presence(self, instance_uuid: str) -> DomainPresence:
        """Whether the instance's domain (named by its UUID, as nova
        names it) exists on this host.  Never raises: an error is
        UNKNOWN.  The default cannot tell, which keeps an incoming
        migration's claims until it is confirmed or aborted."""
        return DomainPresence.UNKNOWN

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
