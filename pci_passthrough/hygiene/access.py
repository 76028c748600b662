"""How HostAgent reads and restores VF netdev states.

HostAgent takes any :class:`NetdevAccess`.  :class:`NetlinkAccess` is the
real one (pyroute2, imported on first use: it costs about 170 ms at
import, which the command line must not pay for commands that never
touch a netdev).  :class:`NoNetdevAccess` is for hosts whose sysfs tree
names netdevs that do not exist (libvirt's test driver, demos): it reads
nothing, so nothing is journalled and nothing is ever written to a real
netdev that happens to carry a fake one's name.

Reading a netdev needs no privilege; writing one needs CAP_NET_ADMIN.
:class:`PrivsepNetlinkAccess` reads like NetlinkAccess and restores
through the oslo.privsep daemon of :mod:`pci_passthrough.privsep`, for a
service that runs without it (nova-compute).  :func:`netlink_access`
picks one of the two as the option ``netdev_writes`` says.
"""

import abc
import logging

from pci_passthrough import exception
from pci_passthrough.config.settings import check_netdev_writes
from pci_passthrough.hygiene.record import NetdevState, RestoreStep

LOG = logging.getLogger(__name__)

#: Bit of CAP_NET_ADMIN in a capability set (linux/capability.h).
CAP_NET_ADMIN = 12
PROC_STATUS = "/proc/self/status"


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
        from pci_passthrough.hygiene import netlink

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
        from pci_passthrough.hygiene import netlink

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


class PrivsepNetlinkAccess(NetlinkAccess):
    """Reads netdevs directly and restores them through the privsep
    daemon of :mod:`pci_passthrough.privsep` (CAP_NET_ADMIN only),
    which is started on the first restore.

    Both work in this process's network namespace: the daemon, without
    CAP_SYS_ADMIN, cannot enter another one.
    """

    def __init__(self) -> None:
        super().__init__(netns=None)

    def restore(self, journal: NetdevState) -> tuple[RestoreStep, ...]:
        # Imported here: oslo.privsep is for processes that write.
        from pci_passthrough.hygiene import privileged

        return privileged.restore(journal)


def effective_capabilities(status_text: str) -> int:
    """The effective capability set in the text of /proc/PID/status.

    :raises ValueError: the text has no CapEff line of hex digits.
    """
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            value = value.strip()
            if not value or len(value) > 16 or any(
                    c not in "0123456789abcdefABCDEF" for c in value):
                raise ValueError(f"CapEff is {value!r:.40}; expected "
                                 f"up to 16 hex digits")
            return int(value, 16)
    raise ValueError("no CapEff line")


def has_cap_net_admin(status_path: str = PROC_STATUS) -> bool:
    """Whether this process has CAP_NET_ADMIN in its effective set;
    False when ``status_path`` cannot tell (a restore through privsep
    works either way)."""
    try:
        # The Name line holds the process's name, any bytes.
        with open(status_path, encoding="ascii",
                  errors="replace") as status:
            caps = effective_capabilities(status.read(65536))
    except (OSError, ValueError) as exc:
        LOG.warning("Cannot read the capabilities of this process from "
                    "%s (%s): netdev writes go through privsep",
                    status_path, exc)
        return False
    return bool(caps >> CAP_NET_ADMIN & 1)


def netlink_access(netdev_writes: str,
                   status_path: str = PROC_STATUS) -> NetlinkAccess:
    """The netlink access that makes netdev writes as ``netdev_writes``
    (the option of that name) says: ``direct``, ``privsep``, or
    ``auto``: directly when this process has CAP_NET_ADMIN (read from
    ``status_path``), else through privsep.

    :raises InvalidOption: ``netdev_writes`` is none of these.
    """
    writes = check_netdev_writes(netdev_writes)
    if writes == "auto":
        writes = "direct" if has_cap_net_admin(status_path) else "privsep"
        LOG.info("netdev_writes = auto: VF netdevs are restored %s",
                 "directly (CAP_NET_ADMIN)" if writes == "direct" else
                 "through privsep (no CAP_NET_ADMIN)")
    return NetlinkAccess() if writes == "direct" else PrivsepNetlinkAccess()
