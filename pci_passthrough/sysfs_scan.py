"""One pass over sysfs: every SR-IOV PF and VF of the host.

The scan walks /sys/bus/pci/devices once, in address order.  A PF is a
device with sriov_totalvfs > 0; its VFs are found through its virtfnN
links (one readlink each, sorted numerically), so VF entries of the bus
listing are never probed.  What all VFs of a PF share (vendor, class, the
VF device id in sriov_vf_device) is read once from the PF.

Robustness: one broken or vanishing device never breaks the scan; it is
skipped, logged with its path and the reason, and listed in
ScanResult.errors.  No file is read past _MAX_READ bytes, and a link that
resolves outside the sysfs root is refused, not followed.
"""

import logging
import os
import re
import sys
from collections.abc import Iterable

from pci_passthrough import exception
from pci_passthrough.device import (
    DEV_TYPE_PF,
    DEV_TYPE_VF,
    PciDevice,
    ScanDiff,
    ScanIssue,
    ScanResult,
)
from pci_passthrough.pci_address import address_sort_key, normalize_address

LOG = logging.getLogger(__name__)

# sysfs attributes are at most a page; nothing this scanner reads is
# longer than a line.
_MAX_READ = 4096
_VIRTFN = re.compile(r"virtfn(\d+)\Z")
# Representor netdevs of a switchdev PF: pf0vf3, pf0, c1pf0vf3, pf0sf8.
_REPRESENTOR = re.compile(r"(c\d+)?pf\d+(vf\d+|sf\d+)?\Z")
_UPLINK = re.compile(r"p\d+\Z")


class _DeviceSkipped(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class SysfsReader:
    """Bounded reads of sysfs files, counting the file system calls made
    (open+read+close counts as one read)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def read(self, path: str) -> str:
        """The file's first line, stripped; raises OSError."""
        self.calls += 1
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, _MAX_READ)
        finally:
            os.close(fd)
        return data.decode("ascii", "replace").strip()

    def read_optional(self, path: str) -> str | None:
        """The file's content, or None when it is absent or its read
        fails (attributes like phys_port_name fail with EOPNOTSUPP)."""
        try:
            text = self.read(path)
        except OSError:
            return None
        return text or None

    def readlink(self, path: str) -> str:
        self.calls += 1
        return os.readlink(path)

    def readlink_optional(self, path: str) -> str | None:
        try:
            return self.readlink(path)
        except OSError:
            return None

    def listdir(self, path: str) -> list[str]:
        self.calls += 1
        return os.listdir(path)

    def listdir_optional(self, path: str) -> list[str]:
        try:
            return self.listdir(path)
        except OSError:
            return []


def _hex_id(text: str, width: int, path: str) -> str:
    value = text.lower().removeprefix("0x")
    try:
        number = int(value, 16)
    except ValueError:
        raise _DeviceSkipped(path, f"not a hex id: {text!r}") from None
    return sys.intern(f"{number:0{width}x}")


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value < 0 else value


def _basename(link: str | None) -> str | None:
    return None if link is None else sys.intern(os.path.basename(link))


class _Scan:
    """The state of one scan (one object per call: no shared state)."""

    def __init__(self, root: str, reader: SysfsReader) -> None:
        self.root = root
        self.reader = reader
        self.devices: list[PciDevice] = []
        self.errors: list[ScanIssue] = []

    def skip(self, path: str, reason: str) -> None:
        LOG.warning("Skipping SR-IOV device at %s: %s", path, reason)
        self.errors.append(ScanIssue(path=path, reason=reason))

    def inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    def resolve(self, link_path: str) -> str:
        """Where a device link points, refused when outside the root."""
        target = os.path.normpath(os.path.join(
            os.path.dirname(link_path), self.reader.readlink(link_path)))
        if not self.inside(target):
            raise _DeviceSkipped(link_path,
                                 f"link resolves outside the sysfs root "
                                 f"{self.root} to {target}; not followed")
        return target

    # -- netdevs ----------------------------------------------------------

    def netdev_of(self, dev_path: str, is_pf: bool) -> str | None:
        """The device's own netdev.

        Several netdevs under one net/ happen in switchdev mode: a PF's
        uplink plus its VF representors.  The uplink is the one whose
        phys_port_name is ``p<n>``; failing that, the one that is not a
        representor (representors are named by phys_port_name
        pfN/pfNvfM).  Ties go to the smallest name, never to listing
        order.
        """
        names = self.reader.listdir_optional(dev_path + "/net")
        if len(names) <= 1:
            return sys.intern(names[0]) if names else None
        uplinks, others = [], []
        for name in sorted(names):
            port = self.reader.read_optional(
                f"{dev_path}/net/{name}/phys_port_name")
            if port is not None and _UPLINK.match(port):
                uplinks.append(name)
            elif port is None or not _REPRESENTOR.match(port) or not is_pf:
                others.append(name)
        chosen = (uplinks or others or sorted(names))[0]
        return sys.intern(chosen)

    def net_attrs(self, dev_path: str, netdev: str | None
                  ) -> tuple[str | None, str | None, str | None,
                             str | None]:
        if netdev is None:
            return None, None, None, None
        base = f"{dev_path}/net/{netdev}/"
        read = self.reader.read_optional
        mac = read(base + "address")
        return (mac.lower() if mac else None, read(base + "operstate"),
                read(base + "phys_port_name"),
                read(base + "phys_switch_id"))

    # -- devices ----------------------------------------------------------

    def scan(self) -> None:
        bus = self.root + "/bus/pci/devices"
        try:
            entries = self.reader.listdir(bus)
        except OSError as exc:
            raise exception.SysfsRootError(
                path=self.root,
                reason=f"{bus} cannot be listed ({exc.strerror}); expected "
                       f"a sysfs tree with bus/pci/devices") from exc
        seen_vfs: set[str] = set()
        for entry in sorted(entries, key=_entry_key):
            if entry in seen_vfs:
                continue
            link = f"{bus}/{entry}"
            try:
                self.scan_entry(link, seen_vfs)
            except _DeviceSkipped as skipped:
                self.skip(skipped.path, skipped.reason)
            except OSError as exc:
                self.skip(exc.filename or link,
                          exc.strerror or str(exc))

    def scan_entry(self, link: str, seen_vfs: set[str]) -> None:
        try:
            totalvfs = self.reader.read(link + "/sriov_totalvfs")
        except FileNotFoundError:
            return  # not an SR-IOV PF (a VF, or a plain PCI device)
        except NotADirectoryError:
            return
        path = self.resolve(link)
        address = _address(os.path.basename(path), path)
        total = _int_or_none(totalvfs)
        if not total:
            # sriov_totalvfs 0: SR-IOV capable in name only.
            return
        read = self.reader.read
        vendor = _hex_id(read(path + "/vendor"), 4, path + "/vendor")
        product = _hex_id(read(path + "/device"), 4, path + "/device")
        class_code = _hex_id(read(path + "/class"), 6, path + "/class")
        numvfs = _int_or_none(self.reader.read_optional(
            path + "/sriov_numvfs"))
        vf_dev_text = self.reader.read_optional(path + "/sriov_vf_device")
        vf_product = (_hex_id(vf_dev_text, 4, path + "/sriov_vf_device")
                      if vf_dev_text else product)
        numa = _int_or_none(self.reader.read_optional(path + "/numa_node"))
        netdev = self.netdev_of(path, is_pf=True)
        mac, state, port_name, switch_id = self.net_attrs(path, netdev)
        pf = PciDevice(
            address=address, dev_type=DEV_TYPE_PF, vendor_id=vendor,
            product_id=product, class_code=class_code, numa_node=numa,
            driver=_basename(self.reader.readlink_optional(
                path + "/driver")),
            iommu_group=_int_or_none(_basename(
                self.reader.readlink_optional(path + "/iommu_group"))),
            netdev=netdev, mac=mac, link_state=state,
            phys_port_name=port_name, phys_switch_id=switch_id,
            totalvfs=total, numvfs=numvfs)
        vfs: list[PciDevice] = []
        for index, name in self.virtfn_links(path):
            vf_link = f"{path}/{name}"
            try:
                vf = self.scan_vf(vf_link, pf, index, vf_product)
            except _DeviceSkipped as skipped:
                self.skip(skipped.path, skipped.reason)
                continue
            except OSError as exc:
                # A VF vanishing mid-scan (VFs being destroyed).
                self.skip(exc.filename or vf_link,
                          exc.strerror or str(exc))
                continue
            seen_vfs.add(vf.address)
            vfs.append(vf)
        self.devices.append(pf)
        self.devices.extend(vfs)

    def virtfn_links(self, pf_path: str) -> list[tuple[int, str]]:
        # virtfn10 sorts before virtfn2 as text: sort by the number.  The
        # links may be fewer than sriov_numvfs while VFs are being created;
        # the links, not the count, say which VFs exist.
        links = []
        for name in self.reader.listdir(pf_path):
            match = _VIRTFN.match(name)
            if match:
                links.append((int(match.group(1)), name))
        links.sort()
        return links

    def scan_vf(self, vf_link: str, pf: PciDevice, index: int,
                product: str) -> PciDevice:
        path = self.resolve(vf_link)
        address = _address(os.path.basename(path), path)
        reader = self.reader
        numa = _int_or_none(reader.read_optional(path + "/numa_node"))
        driver = _basename(reader.readlink_optional(path + "/driver"))
        group = _int_or_none(_basename(
            reader.readlink_optional(path + "/iommu_group")))
        netdev = self.netdev_of(path, is_pf=False) if driver else None
        mac, state, port_name, switch_id = self.net_attrs(path, netdev)
        if driver is None and group is None and numa is None:
            # Everything optional failed: check the device is still there
            # rather than report an empty record for a vanished VF.
            os.stat(path + "/physfn")
        return PciDevice(
            address=address, dev_type=DEV_TYPE_VF, vendor_id=pf.vendor_id,
            product_id=product, class_code=pf.class_code, numa_node=numa,
            driver=driver, iommu_group=group, netdev=netdev, mac=mac,
            link_state=state, phys_port_name=port_name,
            phys_switch_id=switch_id, parent_addr=pf.address,
            vf_index=index, pf_netdev=pf.netdev)


def _entry_key(entry: str) -> tuple[int, ...]:
    try:
        return address_sort_key(entry)
    except ValueError:
        return (1 << 40,)


def _address(name: str, path: str) -> str:
    try:
        return sys.intern(normalize_address(name))
    except ValueError:
        raise _DeviceSkipped(path, f"{name!r} is not a PCI address") \
            from None


def scan(sysfs_root: str | os.PathLike[str],
         reader: SysfsReader | None = None) -> ScanResult:
    """Scan ``sysfs_root`` for SR-IOV PFs and VFs.

    :param reader: a SysfsReader to count the calls made (benchmarks).
    :raises SysfsRootError: the root or its bus/pci/devices cannot be read.
    """
    root = os.path.realpath(os.fspath(sysfs_root))
    if not os.path.isdir(root):
        raise exception.SysfsRootError(
            path=os.fspath(sysfs_root),
            reason="no such directory; expected the root of a sysfs tree "
                   "such as /sys")
    state = _Scan(root, reader or SysfsReader())
    state.scan()
    devices = sorted(state.devices,
                     key=lambda d: address_sort_key(d.address))
    LOG.debug("Scanned %s: %d SR-IOV devices, %d skipped, %d file system "
              "calls", root, len(devices), len(state.errors),
              state.reader.calls)
    return ScanResult(sysfs_root=root, devices=tuple(devices),
                      errors=tuple(state.errors))


def diff_scans(old: ScanResult, new: ScanResult) -> ScanDiff:
    """Devices added, removed and changed between two scans."""
    before, after = old.by_address(), new.by_address()
    return ScanDiff(
        added=_ordered(after[a] for a in after.keys() - before.keys()),
        removed=_ordered(before[a] for a in before.keys() - after.keys()),
        changed=tuple(sorted(
            ((before[a], after[a]) for a in before.keys() & after.keys()
             if before[a] != after[a]),
            key=lambda pair: address_sort_key(pair[0].address))),
    )


def _ordered(devices: Iterable[PciDevice]) -> tuple[PciDevice, ...]:
    return tuple(sorted(devices, key=lambda d: address_sort_key(d.address)))
