"""Per-instance macvtap networks in libvirt.

Each network holds exactly one interface, the netdev of the VF claimed for
one guest port, in a macvtap forward mode; the guest refers to it by name.
"""

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import libvirt
from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception
from pci_passthrough.config import opts
from pci_passthrough.network import netxml
from pci_passthrough.network.base import (
    DomainPresence,
    NetworkDriver,
    NetworkSpec,
    NetworkStatus,
)

LOG = logging.getLogger(__name__)
T = TypeVar("T")

_REMOTE = frozenset({libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC})
# Errors that mean the connection, not the operation, failed: error code
# AND domain together, as Nova's libvirt host code reads them.  A system
# or internal error from another domain (a network that cannot start) is
# the operation's failure and must not cost the host its connection.
_CONNECTION_LOST: Mapping[int, frozenset[int] | None] = {
    # The socket to the daemon failed ("Cannot write data", "End of
    # file while reading data").
    libvirt.VIR_ERR_SYSTEM_ERROR: _REMOTE,
    # "client socket is closed".
    libvirt.VIR_ERR_INTERNAL_ERROR: _REMOTE,
    libvirt.VIR_ERR_RPC: _REMOTE,
    libvirt.VIR_ERR_NO_CONNECT: _REMOTE,
    # The virConnect object itself was closed (by whoever owned it): the
    # client library reports it in the domain of the API called.
    libvirt.VIR_ERR_INVALID_CONN: None,
}
_EXISTS = frozenset({libvirt.VIR_ERR_OPERATION_FAILED,
                     libvirt.VIR_ERR_NETWORK_EXIST})
# Forward modes in which libvirt applies a network's VLAN tag to a
# macvtap interface; a real daemon refuses the others when the network
# starts.
VLAN_MODES = frozenset({"passthrough"})


def connection_lost(exc: libvirt.libvirtError) -> bool:
    """Does ``exc`` mean the connection broke (reconnect and retry) rather
    than that the operation failed?"""
    domains = _CONNECTION_LOST.get(exc.get_error_code(), frozenset())
    return domains is None or exc.get_error_domain() in domains


class LibvirtMacvtapDriver(NetworkDriver):
    """Networks in ``<forward mode='passthrough|bridge|private|vepa'>``
    holding one VF netdev each. Thread safe: one connection, one lock.

    The driver never changes process-wide libvirt state: libvirt's error
    handler stays whatever the host process registered (by default
    libvirt prints each error to stderr; the driver raises them as
    library errors all the same).
    """

    CONFIG_OPTS = [
        cfg.StrOpt(
            "libvirt_uri",
            default="qemu:///system",
            help="libvirt connection URI of this host's hypervisor.",
        ),
        cfg.StrOpt(
            "macvtap_mode",
            default="passthrough",
            choices=opts.MACVTAP_MODES,
            help="Forward mode of the per-instance macvtap networks. "
                 "passthrough gives the guest the VF's netdev alone and "
                 "lets it set the MAC; the others share the netdev.",
        ),
    ]

    def __init__(self, conf: cfg.ConfigOpts,
                 connection: libvirt.virConnect | None = None) -> None:
        """:param connection: an open connection to share (the compute
            driver's own); it is used, never closed, until it breaks."""
        super().__init__(conf)
        self.uri: str = conf.pci_passthrough.libvirt_uri
        self.mode: str = conf.pci_passthrough.macvtap_mode
        self._conn: libvirt.virConnect | None = connection
        self._borrowed = connection is not None
        self._lock = threading.RLock()
        #: libvirt API calls made, for the benchmark's calls-per-port.
        self.calls = 0

    # -- connection ------------------------------------------------------

    def _connection(self) -> libvirt.virConnect:
        if self._conn is None:
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise exception.NetworkOperationFailed(
                    network="-", operation=f"connect to {self.uri}",
                    reason=exc.get_error_message(),
                    code=exc.get_error_code()) from exc
        return self._conn

    def _run(self, name: str, operation: str,
             step: Callable[[libvirt.virConnect], T]) -> T:
        """Run an idempotent step; a broken connection is reopened once
        and the step retried."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return step(conn)
                except libvirt.libvirtError as exc:
                    if connection_lost(exc) and attempt == 1:
                        LOG.warning("libvirt connection to %s lost (%s); "
                                    "reconnecting", self.uri, exc)
                        self._drop()
                        continue
                    raise exception.NetworkOperationFailed(
                        network=name, operation=operation,
                        reason=exc.get_error_message(),
                        code=exc.get_error_code()) from exc
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        # A borrowed connection is the host process's to close; the
        # driver goes on with one of its own.
        conn, self._conn = self._conn, None
        borrowed, self._borrowed = self._borrowed, False
        if conn is not None and not borrowed:
            # A connection that broke may refuse to close: it is gone.
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            if self._borrowed:
                self._conn, self._borrowed = None, False
            self._drop()

    def vlan_refusal(self) -> str | None:
        if self.mode in VLAN_MODES:
            return None
        return (f"option [pci_passthrough] macvtap_mode is {self.mode}, "
                f"and libvirt applies a VLAN to a macvtap interface only "
                f"in mode {', '.join(sorted(VLAN_MODES))}")

    # -- networks --------------------------------------------------------

    def _lookup(self, conn: libvirt.virConnect,
                name: str) -> libvirt.virNetwork | None:
        self.calls += 1
        try:
            return conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return None
            raise

    def _define(self, conn: libvirt.virConnect,
                xml: str) -> libvirt.virNetwork:
        self.calls += 1
        try:
            return conn.networkDefineXMLFlags(
                xml, libvirt.VIR_NETWORK_DEFINE_VALIDATE)
        except (AttributeError, TypeError):
            # libvirt older than 7.7 has no flags variant.
            return conn.networkDefineXML(xml)

    def ensure_network(self, spec: NetworkSpec) -> bool:
        xml = netxml.network_xml(spec, self.mode)

        def step(conn: libvirt.virConnect) -> bool:
            # The common case, a new network, costs three calls: define,
            # create, set autostart.
            try:
                net = self._define(conn, xml)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in _EXISTS:
                    raise
                return self._converge(conn, spec, xml)
            self._start(net)
            return True

        return self._run(spec.name, "define and start", step)

    def _start(self, net: libvirt.virNetwork) -> None:
        self.calls += 1
        net.create()
        self.calls += 1
        net.setAutostart(1)

    def _converge(self, conn: libvirt.virConnect, spec: NetworkSpec,
                  xml: str) -> bool:
        net = self._lookup(conn, spec.name)
        current = None if net is None else self._parsed(net)
        if net is None or current is None:
            net = self._define(conn, xml)
            self._start(net)
            return True
        if current.as_spec() != spec or current.mode != self.mode:
            LOG.info("Network %s holds %s (mode %s, vlan %s); rewriting "
                     "it for %s", spec.name, current.netdevs, current.mode,
                     current.vlan, spec)
            self._remove(net)
            net = self._define(conn, xml)
            self._start(net)
            return True
        changed = False
        self.calls += 3
        if not net.isPersistent():
            self._define(conn, xml)
            changed = True
        if not net.isActive():
            net.create()
            changed = True
        if not net.autostart():
            net.setAutostart(1)
            changed = True
        return changed

    def _parsed(self, net: libvirt.virNetwork) -> netxml.ParsedNetwork | None:
        """The network's definition; None when it was deleted since it
        was looked up."""
        self.calls += 1
        try:
            return netxml.parse_network(net.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            return None

    def _remove(self, net: libvirt.virNetwork) -> None:
        # Destroy first: a real daemon turns an undefined active network
        # transient, the test driver refuses to undefine it.
        self.calls += 1
        try:
            net.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return  # deleted since it was looked up
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise  # anything but "not active"
        self.calls += 1
        try:
            net.undefine()
        except libvirt.libvirtError as exc:
            # Transient networks vanish on destroy; nothing to undefine.
            if exc.get_error_code() not in (
                    libvirt.VIR_ERR_NO_NETWORK,
                    libvirt.VIR_ERR_OPERATION_INVALID):
                raise

    def delete_network(self, name: str) -> bool:
        def step(conn: libvirt.virConnect) -> bool:
            net = self._lookup(conn, name)
            if net is None:
                return False
            self._remove(net)
            return True

        return self._run(name, "delete", step)

    def list_networks(self, prefix: str) -> dict[str, NetworkSpec]:
        return self._run(prefix + "*", "list", lambda conn: (
            self._inspect_all(conn, prefix, self._spec_of)))

    def forward_mode(self) -> str | None:
        return self.mode

    def network_status(self, prefix: str) -> dict[str, NetworkStatus]:
        return self._run(prefix + "*", "inspect", lambda conn: (
            self._inspect_all(conn, prefix, self._status_of)))

    def _spec_of(self, net: libvirt.virNetwork) -> NetworkSpec:
        self.calls += 1
        parsed = netxml.parse_network(net.XMLDesc(0))
        # A network under the prefix that holds several netdevs was not
        # written by this driver: report it with its first netdev so
        # that reconciliation rewrites it.
        return NetworkSpec(net.name(),
                           parsed.netdevs[0] if parsed.netdevs else "",
                           parsed.vlan)

    def _status_of(self, net: libvirt.virNetwork) -> NetworkStatus:
        self.calls += 4
        parsed = netxml.parse_network(net.XMLDesc(0))
        return NetworkStatus(
            spec=NetworkSpec(net.name(),
                             parsed.netdevs[0] if parsed.netdevs else "",
                             parsed.vlan),
            netdevs=parsed.netdevs, active=bool(net.isActive()),
            persistent=bool(net.isPersistent()),
            autostart=bool(net.autostart()), mode=parsed.mode)

    def _listed(self, conn: libvirt.virConnect,
                prefix: str) -> list[libvirt.virNetwork]:
        """The networks whose names start with ``prefix``, as listed
        now."""
        self.calls += 1
        return [net for net in conn.listAllNetworks(0)
                if net.name().startswith(prefix)]

    def _inspect_all(self, conn: libvirt.virConnect, prefix: str,
                     inspect: Callable[[libvirt.virNetwork], T]
                     ) -> dict[str, T]:
        """``inspect`` of each network listed under ``prefix``, by name.

        A network deleted between the listing and its inspection (an
        agent releasing its instance meanwhile) is not there: it is left
        out, as a listing made a moment later would.  Any other error
        fails the whole step.
        """
        found = {}
        for net in self._listed(conn, prefix):
            try:
                found[net.name()] = inspect(net)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                    raise
                LOG.debug("Network %s vanished while it was inspected: "
                          "left out (%s)", net.name(), exc)
        return found

    # -- domains ---------------------------------------------------------

    def domain_presence(self, instance_uuid: str) -> DomainPresence:
        def step(conn: libvirt.virConnect) -> DomainPresence:
            self.calls += 1
            try:
                conn.lookupByUUIDString(instance_uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return DomainPresence.ABSENT
                raise
            return DomainPresence.PRESENT

        try:
            return self._run("-", f"look up domain {instance_uuid}", step)
        except exception.NetworkOperationFailed as exc:
            LOG.warning("Cannot tell whether domain %s exists: %s",
                        instance_uuid, exc)
            return DomainPresence.UNKNOWN
