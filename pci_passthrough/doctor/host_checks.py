"""doctor's checks of one host: the ledger against sysfs, libvirt's
networks and the VF netdevs.

HostDoctor gathers what they compare into a HostState and HostRepairs
repairs what they find; the checks only read (the VF netdevs through
the agent's NetdevAccess, upper devices from sysfs).  A claimed VF's
netdev is read from sysfs by its PCI address as it is checked: a
network holding another VF's netdev means that a guest plugged through
it sits on that VF, whatever the last scan called it.
"""

import dataclasses
import os
from collections.abc import Callable, Mapping

from pci_passthrough import exception
from pci_passthrough.discovery.netdev_lookup import live_netdev
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.hygiene.access import NetdevAccess
from pci_passthrough.hygiene.record import NetdevState, diff
from pci_passthrough.model.claims import Allocation
from pci_passthrough.model.device import PciDevice
from pci_passthrough.model.states import NETWORKED
from pci_passthrough.network.base import NetworkSpec, NetworkStatus
from pci_passthrough.network.names import parse_network_name


@dataclasses.dataclass(frozen=True, slots=True)
class HostState:
    """What the checks compare, read at one time."""

    #: The network name prefix: a network is ours when its whole name
    #: parses with it.
    prefix: str
    sysfs_root: str
    #: Every claim of the ledger.
    allocations: tuple[Allocation, ...]
    #: Instances whose incoming lease ran out unconfirmed.
    expired_incoming: tuple[str, ...]
    #: Instances whose outgoing migration neither completed nor aborted
    #: in time.
    expired_outgoing: tuple[str, ...]
    lease_timeout: int
    #: The networks whose names start with the prefix, as found.
    networks: Mapping[str, NetworkStatus]
    #: The network driver's forward mode (None: nothing to compare).
    forward_mode: str | None
    #: Device address -> the netdev the ledger recorded.
    recorded_netdevs: Mapping[str, str | None]
    #: The assignable devices, by address.
    devices: Mapping[str, PciDevice]
    #: Everything the last scan saw (PFs included).
    scanned: tuple[PciDevice, ...]
    #: Journalled VF netdev states, by device address.
    journals: Mapping[str, NetdevState]
    #: PF address -> why its VFs are not given out.
    unhealthy_pfs: Mapping[str, str]


def examine(state: HostState,
            spec_of: Callable[[Allocation], NetworkSpec],
            netdevs: NetdevAccess) -> list[Finding]:
    """Every finding, in a stable order.

    :param spec_of: the network a claim's port should have.
    :param netdevs: how VF netdev states are read.
    """
    # An expired lease's repair is its release: its ports' networks and
    # devices are not examined one by one.
    expired = set(state.expired_incoming)
    allocs = [a for a in state.allocations
              if a.instance_uuid not in expired]
    return [*lease_findings(state),
            *network_findings(state, allocs, spec_of),
            *device_findings(state, allocs),
            *free_vf_findings(state),
            *journal_findings(state, netdevs),
            *pf_findings(state)]


def lease_findings(state: HostState) -> list[Finding]:
    found = []
    limit = f"{state.lease_timeout} s (option incoming_migration_timeout)"
    for inst in state.expired_incoming:
        found.append(Finding(
            FindingKind.LEASE_EXPIRED, f"instance {inst}",
            f"its incoming migration was not confirmed within {limit}",
            "release it here: delete its networks, restore its VFs, free "
            "its claims", fixable=True))
    for inst in state.expired_outgoing:
        found.append(Finding(
            FindingKind.STALE_OUTGOING, f"instance {inst}",
            f"its outgoing migration neither completed nor aborted "
            f"within {limit}",
            "find where the guest runs: call complete_outgoing_migration "
            "if on the destination, abort_outgoing_migration if here",
            fixable=False))
    return found


def network_findings(state: HostState, allocs: list[Allocation],
                     spec_of: Callable[[Allocation], NetworkSpec]
                     ) -> list[Finding]:
    found = []
    held = {(a.instance_uuid, a.port_index) for a in state.allocations}
    for name in sorted(state.networks):
        parsed = parse_network_name(state.prefix, name)
        if parsed is None or parsed in held:
            continue
        found.append(Finding(
            FindingKind.ORPHAN_NETWORK, f"network {name}",
            f"instance {parsed[0]} port {parsed[1]} holds no claim here",
            "delete the network", fixable=True))
    for alloc in allocs:
        if alloc.state not in NETWORKED:
            continue
        netdev = alloc.netdev
        if not alloc.vanished:
            live = live_netdev(state.sysfs_root, alloc.address)
            if live.netdev is None:
                found.append(_unresolved(alloc, live.problem or ""))
                continue
            netdev = live.netdev
        if not netdev:
            continue
        spec = spec_of(dataclasses.replace(alloc, netdev=netdev))
        subject = f"network {spec.name}"
        status = state.networks.get(spec.name)
        repair = f"define and start it holding {spec.netdev}"
        if status is None:
            found.append(Finding(
                FindingKind.MISSING_NETWORK, subject,
                f"instance {alloc.instance_uuid} port {alloc.port_index} "
                f"is {alloc.state} but its network is missing", repair,
                fixable=True))
            continue
        problems = status.problems(spec, state.forward_mode)
        if problems:
            problem = "; ".join(problems) + " (the ledger's claim of " \
                f"{alloc.address})"
            misplugged = _misplugged(state, alloc, spec, status)
            found.append(Finding(
                FindingKind.DRIFTED_NETWORK, subject,
                problem + "".join(f"; {p}" for p, _ in misplugged),
                f"rewrite it: {repair}" + "".join(
                    f"; {r}" for _, r in misplugged), fixable=True))
        elif status.inactive():
            found.append(Finding(
                FindingKind.INACTIVE_NETWORK, subject,
                ", ".join(status.inactive()),
                "start it, define it persistently and autostart it",
                fixable=True))
    return found


def _unresolved(alloc: Allocation, problem: str) -> Finding:
    return Finding(
        FindingKind.NETDEV_CHANGED, f"device {alloc.address}",
        f"held by instance {alloc.instance_uuid} port {alloc.port_index} "
        f"({alloc.state}), but its netdev cannot be resolved: {problem}",
        "find what renamed or unbound it (udev rules, its driver); its "
        "network is left as it is until the VF names one netdev again",
        fixable=False)


def _misplugged(state: HostState, alloc: Allocation, spec: NetworkSpec,
                status: NetworkStatus) -> list[tuple[str, str]]:
    """For each other VF's netdev the network holds: what that means for
    its guest, and the repair's part for it."""
    found = []
    for netdev in status.netdevs:
        other = vf_holding(state.sysfs_root, state.devices, netdev)
        if netdev == spec.netdev or other in (None, alloc.address):
            continue
        uppers = upper_devices(state.sysfs_root, netdev)
        if not uppers:
            found.append((
                f"{netdev} is the netdev of VF {other} now, on which a "
                f"guest plugged through this network while it held "
                f"{netdev} would sit, not on its claimed VF "
                f"{alloc.address}; nothing sits on {netdev} now",
                f"VF {other} stays claimable"))
            continue
        found.append((
            f"{netdev} is the netdev of VF {other} now: a guest plugged "
            f"through this network sits on {other}, not on its claimed "
            f"VF {alloc.address} (upper device(s) {', '.join(uppers)} on "
            f"{netdev})",
            f"hold VF {other} back from claims while anything sits on "
            f"{netdev}; the guest of instance {alloc.instance_uuid} port "
            f"{alloc.port_index} must be replugged (detach and attach its "
            f"interface, or hard-reboot or migrate the instance) to move "
            f"to {alloc.address}"))
    return found


def vf_holding(sysfs_root: str, devices: Mapping[str, PciDevice],
               netdev: str) -> str | None:
    """The assignable VF whose netdev is ``netdev`` now: one the last
    scan named so, if sysfs still does."""
    for address in sorted(devices):
        if devices[address].netdev == netdev and \
                live_netdev(sysfs_root, address).netdev == netdev:
            return address
    return None


def device_findings(state: HostState,
                    allocs: list[Allocation]) -> list[Finding]:
    found = []
    for alloc in allocs:
        subject = f"device {alloc.address}"
        if alloc.vanished:
            found.append(Finding(
                FindingKind.DEVICE_GONE, subject,
                f"held by instance {alloc.instance_uuid} port "
                f"{alloc.port_index} but gone from sysfs",
                "bring the device back (PF driver, numvfs) or release the "
                "instance", fixable=False))
            continue
        old = state.recorded_netdevs.get(alloc.address)
        if alloc.netdev and old and old != alloc.netdev:
            found.append(Finding(
                FindingKind.NETDEV_CHANGED, subject,
                f"its netdev is {alloc.netdev}, the ledger says {old}",
                f"record {alloc.netdev} (its network follows)",
                fixable=True))
    return found


def free_vf_findings(state: HostState) -> list[Finding]:
    found = []
    held = {a.address for a in state.allocations}
    # A netdev a network of ours holds explains its macvtap: the network
    # has a finding of its own when it should not be there.
    ours = {dev for name, status in state.networks.items()
            if parse_network_name(state.prefix, name)
            for dev in status.netdevs}
    for address in sorted(state.devices):
        dev = state.devices[address]
        if address in held or not dev.netdev or dev.netdev in ours:
            continue
        uppers = upper_devices(state.sysfs_root, dev.netdev)
        if uppers:
            found.append(Finding(
                FindingKind.UPPER_DEVICE, f"device {address}",
                f"free, but its netdev {dev.netdev} has upper device(s) "
                f"{', '.join(uppers)} that no network of ours explains",
                "not ours to remove: check who made it (ip -d link show) "
                "and remove it by hand", fixable=False))
    return found


def journal_findings(state: HostState,
                     netdevs: NetdevAccess) -> list[Finding]:
    found = []
    held = {a.address for a in state.allocations}
    for address, journal in sorted(state.journals.items()):
        if address in held:
            continue  # in use: restored when released
        subject = f"device {address}"
        netdev = live_netdev(state.sysfs_root, address).netdev or \
            journal.netdev
        uppers = upper_devices(state.sysfs_root, netdev)
        if uppers:
            # A guest plugged onto it through a network that held its
            # netdev: restoring it now would pull the netdev from under
            # the guest, and freeing it would hand the guest's VF out.
            found.append(Finding(
                FindingKind.VF_NOT_RESTORED, subject,
                f"free, but held back (its state is journalled) while "
                f"upper device(s) {', '.join(uppers)} sit on its netdev "
                f"{netdev}: a guest plugged through a network that held "
                f"{netdev} may sit on it",
                f"move that guest off {netdev} (replug the instance whose "
                f"network held it); doctor --fix then restores the VF and "
                f"hands it out again", fixable=False))
            continue
        try:
            current = netdevs.read(
                journal.netdev,
                None if journal.vf is None else journal.vf.key)
        except exception.PciPassthroughError as exc:
            current, problem = None, f"cannot be read ({exc})"
        else:
            problem = "does not exist"
        if current is None:
            found.append(Finding(
                FindingKind.VF_NOT_RESTORED, subject,
                f"free, its state journalled before its last plug is not "
                f"restored, and netdev {journal.netdev} {problem}",
                f"restore {journal.netdev} once it is back", True))
            continue
        try:
            differences = diff(journal, current)
        except exception.PciPassthroughError:
            differences = ()
        what = ("; ".join(map(str, differences)) if differences
                else "no difference left, only the journal")
        found.append(Finding(
            FindingKind.VF_NOT_RESTORED, subject,
            f"free, its netdev {journal.netdev} is not restored to its "
            f"state before its last plug ({what}); it is not handed out "
            f"until it is",
            "restore the journalled state, then forget the journal",
            fixable=True))
    return found


def pf_findings(state: HostState) -> list[Finding]:
    found = []
    scanned = {d.address: d for d in state.scanned}
    held = {a.address for a in state.allocations}
    holders: dict[str, set[str]] = {}
    for alloc in state.allocations:
        pf = alloc.parent_addr or alloc.address
        holders.setdefault(pf, set()).add(alloc.instance_uuid)
    for pf, why in sorted(state.unhealthy_pfs.items()):
        free = [a for a, d in state.devices.items()
                if d.parent_addr == pf and a not in held]
        problem = f"{why}: {len(free)} free VF(s) of it cannot be claimed"
        if pf in state.devices and pf not in held:
            problem += ", nor the PF itself"
        # A VF gone with its PF's driver has no parent left here: its
        # claim is a device-gone finding of its own.
        insts = sorted(holders.get(pf, ()))
        problem += (f"; instance(s) {', '.join(insts)} hold claims on it "
                    f"(kept, carrying no traffic)" if insts
                    else "; no claim is held on it")
        dev = scanned.get(pf)
        if dev is None or dev.driver is None:
            repair = (f"bind the PF to its network driver again (echo {pf} "
                      f"> /sys/bus/pci/drivers/<driver>/bind), then enable "
                      f"its VFs (sriov_numvfs) if they are gone")
        else:
            repair = (f"check the cable, transceiver and switch port of "
                      f"netdev {dev.netdev} (ip link show {dev.netdev}) "
                      f"and that it is set up")
        found.append(Finding(
            FindingKind.PF_UNHEALTHY, f"device {pf}", problem,
            repair + "; its VFs are claimable again at the next refresh "
            "once it is healthy", fixable=False))
    return found


def upper_devices(sysfs_root: str, netdev: str) -> list[str]:
    """The upper devices (a macvtap, a bond, a bridge port's master)
    sysfs links from the netdev: ``class/net/<netdev>/upper_<name>``."""
    folder = os.path.join(sysfs_root, "class", "net", netdev)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n[len("upper_"):] for n in names
                  if n.startswith("upper_"))
