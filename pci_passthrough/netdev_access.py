"""How HostAgent reads and restores VF netdev states.

HostAgent takes any :class:`NetdevAccess`.  :class:`NetlinkAccess` is the
real one (pyroute2, imported on first use: it costs about 170 ms at
import, which the command line must not pay for commands that never
touch a netdev).  :class:`NoNetdevAccess` is for hosts whose sysfs tree
names netdevs that do not exist (libvirt's test driver, demos): it reads
nothing, so nothing is journalled and nothing is ever written to a real
netdev that happens to carry a fake one's name.
"""

import abc

from pci_passthrough import exception
from pci_passthrough.netdev_state.record import NetdevState, RestoreStep


class NetdevAccess(abc.ABC):
    """Reads and restores netdev states for the agent."""

    #: False when this access deliberately reads no netdev: the agent
    #: then journals nothing, silently.
    touches_netdevs = True

    @abc.abstractmethod
    def read(self, netdev: str, vf: tuple[str, int] | None = None
             ) -> NetdevState | None:
        """The netdev's state; None when no such netdev exists here.

        :param vf: (PF netdev, VF index) when known.
        :raises NetdevStateError: reading failed otherwise.
        """

    @abc.abstractmethod
    def restore(self, journal: NetdevState) -> tuple[RestoreStep, ...]:
        """Give the netdev the journalled state; the steps written.

        :raises NetdevStateError: naming the netdev and the step.
        """


class NetlinkAccess(NetdevAccess):
    """Netlink through pyroute2, in ``netns`` (None: this process's
    namespace).  A socket is opened per call, so one instance serves
    any number of threads."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def read(self, netdev: str, vf: tuple[str, int] | None = None
             ) -> NetdevState | None:
        from pci_passthrough.netdev_state import netlink

        if vf is not None:
            try:
                return netlink.read_state(netdev, vf, self.netns)
            except exception.NetdevPermissionDenied:
                raise
            except exception.NetdevStateError:
                # The PF may be gone, or not report this VF, while the
                # VF's own netdev is there: journal what it tells.
                pass
        try:
            return netlink.read_state(netdev, None, self.netns)
        except exception.NetdevGone:
            return None

    def restore(self, journal: NetdevState) -> tuple[RestoreStep, ...]:
        from pci_passthrough.netdev_state import netlink

        return netlink.restore_state(journal, self.netns)


class NoNetdevAccess(NetdevAccess):
    """For hosts whose netdevs are not real: every netdev reads as
    absent, so nothing is journalled or restored."""

    touches_netdevs = False

    def read(self, netdev: str, vf: tuple[str, int] | None = None
             ) -> NetdevState | None:
        return None

    def restore(self, journal: NetdevState) -> tuple[RestoreStep, ...]:
        raise exception.NetdevGone(
            netdev=journal.netdev, step="restore the state", where="",
            reason="this agent does not touch netdevs (NoNetdevAccess)")
