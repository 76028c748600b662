"""The library's errors.

Every error the library raises derives from PciPassthroughError.  A subclass
sets msg_fmt; its keyword arguments fill it in, so a message always says what
was wrong, where (option, entry, file, device, instance, port) and what
would be right.
"""

from typing import Any


class PciPassthroughError(Exception):
    """Base class: formats ``msg_fmt % kwargs``."""

    msg_fmt = "An unknown error occurred."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError) as exc:
                # A wrong format call is a bug in the library, but the
                # caller still deserves the fields that were given.
                message = f"{self.msg_fmt} ({kwargs!r}: {exc})"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


# --- configuration -------------------------------------------------------

class ConfigError(PciPassthroughError):
    msg_fmt = ("Invalid value for option [%(group)s] %(option)s, entry "
               "%(entry)s: %(reason)s")


class InvalidDeviceSpec(ConfigError):
    pass


class InvalidFlavor(ConfigError):
    pass


class UnknownFlavor(PciPassthroughError):
    msg_fmt = "Unknown PCI flavor %(name)r; known flavors: %(known)s."


class InvalidOption(ConfigError):
    """An option other than device_spec and flavor; ``entry`` is the
    value (or the list item) that is wrong, or where it was read."""

    msg_fmt = ("Invalid value %(entry)s for option [%(group)s] "
               "%(option)s: %(reason)s.")


class ConfigFileError(ConfigError):
    msg_fmt = "Cannot read configuration file %(path)s: %(reason)s."


# --- discovery -----------------------------------------------------------

class SysfsRootError(PciPassthroughError):
    msg_fmt = "Cannot scan sysfs root %(path)s: %(reason)s."


# --- claims, tracker, ledger ---------------------------------------------

class InvalidInstanceId(PciPassthroughError):
    msg_fmt = ("Invalid instance id %(value)r: expected a canonical UUID "
               "such as 4f1a2b3c-0000-4000-8000-00000000abcd.")


class InvalidPortRequest(PciPassthroughError):
    msg_fmt = "Invalid request for port %(port)s: %(reason)s."


class ClaimFailed(PciPassthroughError):
    msg_fmt = ("Cannot claim a device for instance %(instance)s port "
               "%(port)s (flavor %(flavor)s): %(reason)s.")


class DeviceAlreadyClaimed(PciPassthroughError):
    msg_fmt = "Device %(address)s is already held by %(holder)s."


class LedgerError(PciPassthroughError):
    msg_fmt = "Claims ledger %(path)s is unusable: %(reason)s."


class LedgerDiskFull(LedgerError):
    msg_fmt = "Claims ledger %(path)s: disk full: %(reason)s."


class LedgerReadOnly(LedgerError):
    msg_fmt = "Claims ledger %(path)s: read-only file system: %(reason)s."


class LedgerPermissionDenied(LedgerError):
    msg_fmt = "Claims ledger %(path)s: permission denied: %(reason)s."


class InvalidStateTransition(PciPassthroughError):
    msg_fmt = ("Instance %(instance)s port %(port)s cannot go from state "
               "%(old)s to %(new)s; from %(old)s it may go to: "
               "%(allowed)s.")


class ClaimConflict(PciPassthroughError):
    msg_fmt = ("Instance %(instance)s port %(port)s already holds device "
               "%(address)s with %(field)s %(held)s; the request asks for "
               "%(wanted)s. Release the instance to claim it anew.")


class AgentClosed(PciPassthroughError):
    msg_fmt = ("HostAgent.%(method)s: the agent is closed; create a new "
               "HostAgent.")


class PluginNotStarted(PciPassthroughError):
    msg_fmt = ("SriovPlugin.%(method)s: the plugin has no agent (its "
               "init_host has not run, or cleanup_host has).")


# --- networks and the libvirt driver -------------------------------------

class InvalidNetdevName(PciPassthroughError):
    msg_fmt = ("Invalid netdev name %(name)r for device %(device)s: "
               "%(reason)s.")


class NetworkDriverError(PciPassthroughError):
    msg_fmt = ("Network %(network)s for instance %(instance)s port "
               "%(port)s: %(reason)s.")


class VfNetdevUnresolved(NetworkDriverError):
    """A VF's net/ in sysfs does not name exactly one netdev now."""


class NetworkOperationFailed(PciPassthroughError):
    msg_fmt = ("Cannot %(operation)s network %(network)s: %(reason)s "
               "(libvirt error code %(code)s).")


class NetworkDriverNotFound(PciPassthroughError):
    msg_fmt = ("Unknown network driver %(name)r in option "
               "[pci_passthrough] network_driver; installed drivers: "
               "%(known)s.")


class MigrationRefused(PciPassthroughError):
    msg_fmt = ("This host cannot receive instance %(instance)s: "
               "%(reason)s. Nothing was claimed or defined here.")


class ReleaseRefused(PciPassthroughError):
    msg_fmt = ("Cannot free instance %(instance)s: its networks cannot be "
               "removed (%(reason)s). Nothing was freed: a device is never "
               "freed while a network may still hold it. %(remedy)s")


class MigrationNotPrepared(PciPassthroughError):
    msg_fmt = ("Cannot confirm the incoming migration of instance "
               "%(instance)s: %(reason)s.")


# VF hygiene: reading and restoring a VF netdev's state.

class InvalidNetdevState(PciPassthroughError):
    """A state record or its journal text does not validate."""

    msg_fmt = ("Invalid netdev state (%(source)s), field %(field)s: "
               "%(reason)s; expected %(expected)s.")


class NetdevStateMismatch(PciPassthroughError):
    msg_fmt = ("Cannot compare the state journalled for %(journal)s with "
               "the state of %(current)s: they are different devices.")


class NetnsUnavailable(PciPassthroughError):
    msg_fmt = ("Cannot open netlink in network namespace %(netns)s: "
               "%(reason)s.")


class NetdevStateError(PciPassthroughError):
    """A netlink step on one netdev failed; ``step`` says which."""

    msg_fmt = "Cannot %(step)s of netdev %(netdev)s%(where)s: %(reason)s."


class NetdevGone(NetdevStateError):
    msg_fmt = ("Cannot %(step)s of netdev %(netdev)s%(where)s: no such "
               "netdev (removed or renamed; %(reason)s).")


class NetdevPermissionDenied(NetdevStateError):
    msg_fmt = ("Cannot %(step)s of netdev %(netdev)s%(where)s: permission "
               "denied (%(reason)s); changing a netdev needs "
               "CAP_NET_ADMIN in its network namespace.")


# --- placement -----------------------------------------------------------

class PlacementRequestError(PciPassthroughError):
    msg_fmt = ("PCI flavor %(flavor)s cannot be asked of Placement: "
               "%(reason)s.")


class PlacementUnavailable(PciPassthroughError):
    msg_fmt = "Placement at %(url)s is unavailable: %(reason)s."


class PlacementDeadlineExceeded(PlacementUnavailable):
    msg_fmt = ("Placement at %(url)s is unavailable: %(method)s %(path)s "
               "did not end within %(limit)s s (%(stage)s); [placement] "
               "call_deadline sets the limit.")


class PlacementAnswerTooLarge(PlacementUnavailable):
    msg_fmt = ("Placement at %(url)s is unavailable: %(method)s %(path)s "
               "answered more than %(limit)s bytes; [placement] "
               "max_response_bytes sets the limit.")


class PlacementRedirected(PlacementUnavailable):
    msg_fmt = ("Placement at %(url)s is unavailable: %(method)s %(path)s "
               "answered HTTP %(status)s, a redirect to %(location)s, "
               "which is not followed (credentials never follow a "
               "redirect); point the [placement] options at Placement "
               "itself.")


class PlacementRequestFailed(PciPassthroughError):
    msg_fmt = ("Placement refused %(method)s %(path)s: HTTP %(status)s "
               "%(detail)s")


class PlacementConflict(PciPassthroughError):
    msg_fmt = ("Placement kept answering 409 to %(method)s %(path)s after "
               "%(attempts)s attempts: %(detail)s")


class PlacementRootMissing(PciPassthroughError):
    msg_fmt = ("The root provider %(nodename)s is not in Placement: start "
               "nova-compute first, which creates it with the compute "
               "node's UUID (on a host without nova-compute, let the sync "
               "create it: placement sync --create-root).")


class AllocationMismatch(PciPassthroughError):
    msg_fmt = ("The Placement allocation for instance %(instance)s does "
               "not fit this host: %(reason)s. Nothing was claimed.")


# --- metrics -------------------------------------------------------------

class InvalidMetricsInput(PciPassthroughError):
    msg_fmt = ("Invalid metrics input %(what)s: %(reason)s; expected "
               "%(expected)s.")


class MetricsOutputError(PciPassthroughError):
    msg_fmt = ("Cannot write the metrics to %(path)s: %(reason)s; expected "
               "a file it may create in an existing directory.")


class MetricsSourceDown(PciPassthroughError):
    msg_fmt = ("Cannot read the VF pools: %(reason)s; %(output)s now says "
               "pci_passthrough_pool_source_up 0, with no pool counts.")
