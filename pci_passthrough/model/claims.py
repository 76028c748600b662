"""What callers ask the tracker for, and what it answers."""

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from pci_passthrough import exception

# What follows these in a reason names one device's holder or values.
_REASON_DETAIL = re.compile(r" by instance |; | \(bound to |: its ")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def canonical_port_id(value: object) -> str:
    """A Neutron port's UUID as it is kept (lower case).

    :raises InvalidPortRequest: naming the value, when it is not a UUID.
    """
    if isinstance(value, str) and _UUID.match(value.lower()):
        return value.lower()
    shown = repr(value) if len(repr(value)) <= 60 else \
        repr(value)[:57] + "..."
    raise exception.InvalidPortRequest(
        port=shown, reason="a port id is a UUID such as "
                           "3f2a9c2e-7d4b-4c1e-9a55-0c7a2e1f5b6d")


@dataclasses.dataclass(frozen=True, slots=True)
class PortRequest:
    """One guest port's request: a flavor name or an inline spec.

    :param index: the port's slot on the instance (names its network).
        A request naming ``port_id`` is given its slot by
        HostAgent.claim() and claim_port() (the slot the port holds
        already, else the lowest one free on the instance), and this
        value is not read there; prepare_incoming_migration() keeps it,
        since the destination's networks must have the source's names.
    :param flavor: a configured flavor name.
    :param spec: an inline spec, an anonymous flavor under the same rules.
    :param mac: the guest MAC address of the port.
    :param vlan: a VLAN id, carried in the port's network.
    :param needs_netdev: the port backs a macvtap interface, so it needs a
        VF with a netdev (not on vfio-pci, not driverless).
    :param port_id: the Neutron port's UUID (nova's ``vif['id']``), by
        which HostAgent's per-port calls find the port; stored in lower
        case.
    """

    index: int
    flavor: str | None = None
    spec: Mapping[str, Any] | None = None
    mac: str | None = None
    vlan: int | None = None
    needs_netdev: bool = True
    port_id: str | None = None

    def __post_init__(self) -> None:
        def bad(reason: str) -> exception.InvalidPortRequest:
            return exception.InvalidPortRequest(port=self.index,
                                                reason=reason)

        if (not isinstance(self.index, int) or isinstance(self.index, bool)
                or not 0 <= self.index <= 9999):
            raise bad("the index must be an integer from 0 to 9999")
        if (self.flavor is None) == (self.spec is None):
            raise bad("give exactly one of flavor and spec")
        if self.mac is not None:
            if not isinstance(self.mac, str) or not _MAC.match(
                    self.mac.lower()):
                raise bad(f"MAC {self.mac!r} is not six colon-separated "
                          f"hex bytes")
            object.__setattr__(self, "mac", self.mac.lower())
        if self.vlan is not None and (
                not isinstance(self.vlan, int) or isinstance(self.vlan, bool)
                or not 1 <= self.vlan <= 4094):
            raise bad(f"VLAN {self.vlan!r} is not from 1 to 4094")
        if self.spec is not None:
            object.__setattr__(self, "spec", dict(self.spec))
        if self.port_id is not None:
            object.__setattr__(self, "port_id",
                               canonical_port_id(self.port_id))

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "flavor": self.flavor, "spec": self.spec, "mac": self.mac,
            "vlan": self.vlan, "needs_netdev": self.needs_netdev}
        # Written only when set: a request without one keeps the JSON
        # every earlier version wrote and reads.
        if self.port_id is not None:
            data["port_id"] = self.port_id
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, index: int, text: str) -> "PortRequest":
        data = json.loads(text)
        return cls(index=index, flavor=data.get("flavor"),
                   spec=data.get("spec"), mac=data.get("mac"),
                   vlan=data.get("vlan"),
                   needs_netdev=data.get("needs_netdev", True),
                   port_id=data.get("port_id"))

    @property
    def name(self) -> str:
        """The port as messages name it: its UUID, else its slot."""
        return self.port_id if self.port_id is not None else str(
            self.index)

    @property
    def label(self) -> str:
        """The flavor as shown in messages."""
        return self.flavor if self.flavor is not None else \
            f"inline {json.dumps(self.spec, sort_keys=True)}"


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """A device held by one port of one instance."""

    instance_uuid: str
    port_index: int
    address: str
    netdev: str | None
    flavor: str | None
    state: str
    mac: str | None = None
    vlan: int | None = None
    parent_addr: str | None = None
    #: The device is no longer in sysfs; it is dropped when freed.
    vanished: bool = False
    #: The port's network name, filled in by HostAgent.
    network: str | None = None
    #: The Neutron port's UUID, when the port was claimed with one.
    port_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceVerdict:
    address: str
    match: bool
    reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """Why each device does or does not serve ``count`` of a flavor."""

    flavor: str
    count: int
    satisfiable: bool
    devices: tuple[DeviceVerdict, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "count": self.count,
                "satisfiable": self.satisfiable,
                "devices": [{"address": d.address, "match": d.match,
                             "reason": d.reason} for d in self.devices]}

    def summary(self) -> str:
        """The reasons devices do not match, most common first."""
        counts: dict[str, int] = {}
        for dev in self.devices:
            if not dev.match and dev.reason:
                # Group by the kind of reason, not by each holder.
                key = _REASON_DETAIL.split(dev.reason, maxsplit=1)[0]
                counts[key] = counts.get(key, 0) + 1
        matching = sum(1 for d in self.devices if d.match)
        parts = [f"{matching} free matching device(s) for {self.count} "
                 f"wanted"]
        parts += [f"{reason} ({n} device{'s' if n > 1 else ''})"
                  for reason, n in sorted(counts.items(),
                                          key=lambda kv: -kv[1])]
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateReport:
    """What a (re)scan changed in the tracker."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    #: Devices that disappeared while held: kept until freed.
    vanished_in_use: tuple[str, ...]
    #: PFs whose sriov_numvfs changed since the previous scan.
    numvfs_changed: tuple[str, ...] = ()
    #: PFs that became unhealthy (driver unbound, no carrier) or whose
    #: problem changed; see HostTracker.unhealthy_pfs() for why.
    unhealthy: tuple[str, ...] = ()
    #: PFs healthy again after being unhealthy.
    recovered: tuple[str, ...] = ()
    #: VFs bound to another driver than at the previous scan.
    rebound: tuple[str, ...] = ()
    #: Instances whose incoming migration lease expired unconfirmed and
    #: which were released here (HostAgent.refresh()).
    expired_leases: tuple[str, ...] = ()
