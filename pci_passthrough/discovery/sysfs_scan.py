"""One pass over sysfs: every SR-IOV PF and VF of the host, read as
hostile input.

The scan lists <root>/bus/pci/devices once, in address order.  A PF is a
device with sriov_totalvfs > 0; its VFs are found through its virtfnN
links, so the bus entries of VFs are never probed.  What a VF shares with
its PF by the kernel's construction (drivers/pci/iov.c: the vendor, the
class, the device id in the PF's sriov_vf_device) is read once per PF;
what may differ (numa_node, driver, iommu_group) is read per VF.  A VF's
netdev is found through <root>/class/net, one readlink per netdev, rather
than by listing the VF's net/ directory (five system calls).

sysfs is read as hostile input:

- a file is opened only after its directory entry (scandir's d_type, or
  an lstat) says it is a regular file, then with O_NONBLOCK|O_NOFOLLOW,
  and read once, at most _MAX_READ bytes: a FIFO, socket or device node is
  never opened, a link never followed, and nothing blocks;
- the scan never leaves the root: a bus entry is resolved with realpath
  and must land in <root>/devices; every other link must have the exact
  relative form the kernel writes (virtfnN -> ../<address>, driver ->
  ../(up to the root)/bus/pci/drivers/<name>, ...) and is never followed;
  a directory is entered only when its entry says it is a real directory;
- values are parsed in the formats the kernel writes them
  (pci_passthrough.discovery._values): ASCII digits, no sign, no blanks, no
  '_', no leading zeros, in range;
- a VF is listed only when its virtfnN link points at the address the
  kernel computes from the PF's sriov_offset and sriov_stride, no other
  link reaches it, and its PF is listed.

Every problem is one entry of ScanResult.errors naming the path and what
was expected, and the device it concerns is not listed; the exceptions
are attributes nothing decides on (sriov_totalvfs, sriov_numvfs, and the
MAC, operstate and port attributes of a PF's netdev), which become None
with the device kept.  A netdev name the kernel would refuse
(netdev_name.is_valid_netdev_name) makes its device unlisted.

Not read at all: a VF's MAC, operstate and port attributes (nothing uses
them, and they would double the system calls per VF), its physfn link
(the computed address says which PF it belongs to) and the bus entries
of VFs found through their PF.  What this leaves undetected needs a tree
the kernel cannot make: a PF sitting at the address the kernel computes
for another PF's VF is taken for that VF; a class/net link pointed at
the netdev directory of a device that is not an SR-IOV VF leaves the VF
without netdev.  A file swapped for a device node between its lstat and
its open (by someone writing to sysfs meanwhile) would be opened; a FIFO
or link swapped in cannot block or be followed (O_NONBLOCK|O_NOFOLLOW).

Cost, with the checks (tools/bench/bench_scan.py): about 8 file system
calls per VF (a readlink of virtfnN, driver, iommu_group and the class/net
entry; an lstat, open, read and close of numa_node), within 1.5 times a
bare loop making the same calls.
"""

import errno
import logging
import os
import re
import stat
import sys
from collections.abc import Callable
from typing import TypeVar

from pci_passthrough import exception
from pci_passthrough.discovery import _values as values
from pci_passthrough.model.device import (
    DEV_TYPE_PF,
    DEV_TYPE_VF,
    PciDevice,
    ScanIssue,
    ScanResult,
)
from pci_passthrough.model.netdev_name import EXPECTED as NETDEV_EXPECTED
from pci_passthrough.model.netdev_name import is_valid_netdev_name
from pci_passthrough.model.pci_address import address_sort_key

LOG = logging.getLogger(__name__)

T = TypeVar("T")

# No value this scanner reads is longer than 65 bytes (a phys_switch_id),
# so a file is read once, and one longer than this fails to parse.
_MAX_READ = 128
_O_READ = (os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
           | os.O_CLOEXEC)
_DRIVER = re.compile(r"[!-.0-~]{1,64}\Z")
# Representor netdevs of a switchdev PF: pf0vf3, pf0, c1pf0vf3, pf0sf8.
_REPRESENTOR = re.compile(r"(c\d+)?pf\d+(vf\d+|sf\d+)?\Z", re.ASCII)
_UPLINK = re.compile(r"p\d+\Z", re.ASCII)

_BAD = object()


def _shown(data: bytes) -> str:
    return repr(data[:40]) + ("..." if len(data) > 40 else "")


def _printable(path: str) -> str:
    """A path as it can be logged and printed: names that are not UTF-8
    (surrogate escapes) or not printable are shown with escapes."""
    if path.isascii() and path.isprintable():
        return path
    raw = path.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "backslashreplace")
    return text if text.isprintable() else ascii(text)[1:-1]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "of an unknown file type"


def _entry_kind(entry: os.DirEntry[str]) -> str:
    try:
        return _kind(entry.stat(follow_symlinks=False).st_mode)
    except OSError as exc:
        return f"gone ({exc.strerror})"


def _path_kind(path: str) -> str:
    try:
        return _kind(os.lstat(path).st_mode)
    except OSError as exc:
        return f"gone ({exc.strerror})"


def _read(path: str) -> bytes:
    """One bounded read of a file already known to be a regular file."""
    fd = os.open(path, _O_READ)
    try:
        return os.read(fd, _MAX_READ)
    finally:
        os.close(fd)


class _Problem(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


class _Pf:
    """What one PF's scan found, until the records are made."""

    __slots__ = (
        "address",
        "class_code",
        "listed",
        "netdev",
        "record",
        "vendor",
        "vf_product",
        "vfs",
        "vfs_listed",
    )

    def __init__(self, address: str) -> None:
        self.address = address
        self.record: PciDevice | None = None
        # Whether the PF and its VFs can be listed.
        self.listed = True
        self.vfs_listed = True
        self.vendor = ""
        self.vf_product = ""
        self.class_code = ""
        self.netdev: str | None = None
        # (address, numa_node, driver, iommu_group, vf_index, virtfn link)
        self.vfs: list[tuple[str, int | None, str | None, int | None, int,
                             str]] = []


class _Scan:
    """The state of one scan (one object per call: no shared state)."""

    def __init__(self, root: str) -> None:
        self.root = root
        # Paths are built as base + "/...": a root of "/" is the empty base.
        self.base = "" if root == "/" else root
        self.errors: list[ScanIssue] = []
        self.pfs: list[_Pf] = []
        # VF addresses found through virtfn links, and the link to each.
        self.vf_links: dict[str, str] = {}
        self.duplicates: set[str] = set()
        # VF address -> its root-relative parent directory (one string
        # shared by the VFs of a PF).
        self.vf_parents: dict[str, str] = {}
        self.pf_netdevs: set[str] = set()
        # Parent directory -> {entry name: is a real directory}.
        self.listings: dict[str, dict[str, bool] | None] = {}
        self.numa_values: dict[bytes, int | None] = {}

    def problem(self, path: str, reason: str) -> None:
        path = _printable(path)
        LOG.warning("sysfs %s: %s", path, reason)
        self.errors.append(ScanIssue(path=path, reason=reason))

    # -- files and links --------------------------------------------------

    def value(self, path: str, entry: os.DirEntry[str] | None,
              parse: Callable[[bytes], T], required: bool,
              consequence: str = "") -> T | object:
        """The parsed content of a file listed as ``entry``: None when
        absent and not required, _BAD (with the problem recorded) when it
        cannot be trusted."""
        suffix = f"; {consequence}" if consequence else ""
        if entry is None:
            if not required:
                return None
            self.problem(path, f"missing; expected a file the kernel writes "
                               f"for every SR-IOV PF{suffix}")
            return _BAD
        if not entry.is_file(follow_symlinks=False):
            self.problem(path, f"{_entry_kind(entry)}, expected a regular "
                               f"file; not opened{suffix}")
            return _BAD
        try:
            data = _read(path)
        except OSError as exc:
            self.problem(path, f"cannot be read ({exc.strerror}); expected "
                               f"a readable attribute{suffix}")
            return _BAD
        try:
            return parse(data)
        except ValueError as exc:
            self.problem(path, f"read {_shown(data)}; expected {exc}"
                               f"{suffix}")
            return _BAD

    def optional_value(self, path: str, parse: Callable[[bytes], T],
                       consequence: str) -> T | None:
        """A netdev attribute: None when absent or when the kernel fails
        to show it (EOPNOTSUPP, EINVAL); the problem is recorded when it
        is not a regular file or not in the expected format."""
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if not stat.S_ISREG(mode):
            self.problem(path, f"{_kind(mode)}, expected a regular file; "
                               f"not opened; {consequence}")
            return None
        try:
            data = _read(path)
        except OSError:
            return None
        try:
            return parse(data)
        except ValueError as exc:
            self.problem(path, f"read {_shown(data)}; expected {exc}; "
                               f"{consequence}")
            return None

    def link_text(self, path: str, expected: str) -> str | None:
        """A link's target as text, never followed; None when there is
        no link; raises _Problem when the entry is not a link."""
        try:
            return os.readlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            reason = ("not a symbolic link" if exc.errno == errno.EINVAL
                      else f"cannot be read ({exc.strerror})")
            raise _Problem(path, f"{reason}; expected a link to "
                                 f"{expected}") from None

    def driver(self, path: str, prefix: str,
               cache: dict[str, str]) -> str | None:
        """The driver's name from a link ``prefix<name>``."""
        text = self.link_text(path, prefix + "<driver name>")
        if text is None:
            return None
        name = cache.get(text)
        if name is None:
            name = text[len(prefix):] if text.startswith(prefix) else ""
            if not _DRIVER.match(name):
                raise _Problem(path, f"-> {text!r}; expected {prefix}<driver"
                                     f" name>, the name 1 to 64 printable "
                                     f"ASCII characters; not followed")
            cache[text] = name = sys.intern(name)
        return name

    def iommu_group(self, path: str, prefix: str) -> int | None:
        """The group number from a link ``prefix<number>``."""
        text = self.link_text(path, prefix + "<group number>")
        if text is None:
            return None
        group = (values.canonical_index(text[len(prefix):])
                 if text.startswith(prefix) else None)
        if group is None or group > 0x7FFFFFFF:
            raise _Problem(path, f"-> {text!r}; expected {prefix}<group "
                                 f"number>, the number 0-2147483647 in "
                                 f"decimal; not followed")
        return group

    def listing(self, path: str) -> dict[str, bool] | None:
        """A device's parent directory: entry name -> is a directory (not
        a link), listed once for all the devices under it."""
        if path in self.listings:
            return self.listings[path]
        try:
            with os.scandir(path) as it:
                found: dict[str, bool] | None = {
                    e.name: e.is_dir(follow_symlinks=False) for e in it}
        except OSError as exc:
            self.problem(path, f"cannot be listed ({exc.strerror}); expected "
                               f"the directory of the VFs, which are not "
                               f"listed")
            found = None
        self.listings[path] = found
        return found

    # -- the bus ----------------------------------------------------------

    def scan(self) -> tuple[PciDevice, ...]:
        bus = self.base + "/bus/pci/devices"
        try:
            real = os.path.realpath(bus, strict=True)
        except OSError as exc:
            raise exception.SysfsRootError(
                path=self.root,
                reason=f"{bus} cannot be listed ({exc.strerror}); expected "
                       f"a sysfs tree with bus/pci/devices") from exc
        if real != bus:
            raise exception.SysfsRootError(
                path=self.root,
                reason=f"{bus} resolves to {real}; expected a directory, "
                       f"not a link")
        try:
            with os.scandir(bus) as it:
                links = {e.name: e.is_symlink() for e in it}
        except OSError as exc:
            raise exception.SysfsRootError(
                path=self.root,
                reason=f"{bus} cannot be listed ({exc.strerror}); expected "
                       f"a sysfs tree with bus/pci/devices") from exc
        # Address order: canonical addresses of one length sort as text, a
        # longer domain is a larger one (two sorts in C, no key parsing).
        names = sorted(links)
        names.sort(key=len)
        devices = self.base + "/devices/"
        vf_links = self.vf_links
        for name in names:
            if name in vf_links:
                continue  # a VF, found through its PF
            link = f"{bus}/{name}"
            if not values.ADDRESS.match(name):
                self.problem(link, f"unexpected entry; expected "
                                   f"{values.ADDRESS_EXPECTED}")
                continue
            if not links[name]:
                self.problem(link, f"{_path_kind(link)}; expected a "
                                   f"symbolic link to the device's "
                                   f"directory under {devices}")
                continue
            try:
                path = os.path.realpath(link, strict=True)
            except OSError as exc:
                self.problem(link, f"cannot be resolved ({exc.strerror}); "
                                   f"expected a link to the device's "
                                   f"directory under {devices}")
                continue
            if not path.startswith(devices):
                self.problem(link, f"resolves to {_printable(path)}, "
                                   f"outside {devices}; expected a link "
                                   f"into it; not followed")
                continue
            if path.rpartition("/")[2] != name:
                self.problem(link, f"resolves to {_printable(path)}; "
                                   f"expected a directory named {name}")
                continue
            try:
                os.lstat(path + "/sriov_totalvfs")
            except FileNotFoundError:
                continue  # not an SR-IOV PF
            except OSError as exc:
                self.problem(path, f"cannot be read ({exc.strerror}); "
                                   f"expected a device directory")
                continue
            self.scan_pf(name, path)
        netdevs, refused = self.vf_netdevs()
        return self.records(netdevs, refused)

    # -- a PF -------------------------------------------------------------

    def scan_pf(self, address: str, path: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = {e.name: e for e in it}
        except OSError as exc:
            self.problem(path, f"cannot be listed ({exc.strerror}); expected "
                               f"the PF's directory")
            return
        get = entries.get
        totalvfs = self.value(
            path + "/sriov_totalvfs", get("sriov_totalvfs"), values.count,
            True, "the PF is kept, its sriov_totalvfs unknown")
        if totalvfs == 0:
            return  # SR-IOV capable in name only: not listed
        pf = _Pf(address)
        self.pfs.append(pf)
        vendor = self.value(path + "/vendor", get("vendor"), values.vendor_id,
                            True)
        product = self.value(path + "/device", get("device"),
                             values.device_id, True)
        class_code = self.value(path + "/class", get("class"),
                                values.class_code, True)
        numa = self.value(path + "/numa_node", get("numa_node"),
                          values.numa_node, False)
        rel = path[len(self.base) + 1:]
        up = "../" * (rel.count("/") + 1)
        drivers: dict[str, str] = {}
        driver = group = None
        links_ok = True
        try:
            driver = self.driver(path + "/driver", up + "bus/pci/drivers/",
                                 drivers)
        except _Problem as problem:
            self.problem(problem.path, problem.reason)
            links_ok = False
        try:
            group = self.iommu_group(path + "/iommu_group",
                                     up + "kernel/iommu_groups/")
        except _Problem as problem:
            self.problem(problem.path, problem.reason)
            links_ok = False
        netdev = self.pf_netdev(path, get("net"))
        pf.listed = (links_ok and netdev is not _BAD and _BAD not in (
            vendor, product, class_code, numa))
        kept = "the PF is kept"
        numvfs = self.value(path + "/sriov_numvfs", get("sriov_numvfs"),
                            values.count, True,
                            kept + ", its sriov_numvfs unknown")
        if (isinstance(numvfs, int) and isinstance(totalvfs, int)
                and numvfs > totalvfs):
            self.problem(path + "/sriov_numvfs",
                         f"{numvfs} VFs enabled; expected at most "
                         f"sriov_totalvfs {totalvfs}; {kept}, its "
                         f"sriov_numvfs unknown")
            numvfs = _BAD
        mac = state = port_name = switch_id = None
        if isinstance(netdev, str):
            net = f"{path}/net/{netdev}/"
            consequence = kept + ", this attribute unknown"
            mac = self.optional_value(net + "address", values.mac, consequence)
            state = self.optional_value(net + "operstate", values.operstate,
                                        consequence)
            port_name = self.optional_value(net + "phys_port_name",
                                            values.port_name, consequence)
            switch_id = self.optional_value(net + "phys_switch_id",
                                            values.switch_id, consequence)
        if pf.listed:
            assert isinstance(vendor, str) and isinstance(product, str)
            assert isinstance(class_code, str)
            assert numa is None or isinstance(numa, int)
            assert netdev is None or isinstance(netdev, str)
            pf.vendor, pf.class_code, pf.netdev = vendor, class_code, netdev
            pf.record = PciDevice._make((
                address, DEV_TYPE_PF, vendor, product, class_code, numa,
                driver, group, netdev, mac, state, port_name, switch_id,
                None, None, None,
                totalvfs if isinstance(totalvfs, int) else None,
                numvfs if isinstance(numvfs, int) else None))
        self.scan_vfs(pf, path, rel, up, entries, drivers)

    def pf_netdev(self, path: str,
                  entry: os.DirEntry[str] | None) -> str | object | None:
        """The PF's own netdev, from its net/ directory.

        Several netdevs under one net/ happen in switchdev mode: a PF's
        uplink plus its VF representors.  The uplink is the one whose
        phys_port_name is ``p<n>``; failing that, the one that is not a
        representor (representors are named by phys_port_name
        pfN/pfNvfM).  Ties go to the smallest name, never to listing
        order.
        """
        if entry is None:
            return None
        net = path + "/net"
        if not entry.is_dir(follow_symlinks=False):
            self.problem(net, f"{_entry_kind(entry)}; expected a directory "
                              f"of netdevs")
            return _BAD
        try:
            with os.scandir(net) as it:
                listed = [(e.name, e.is_dir(follow_symlinks=False))
                          for e in it]
        except OSError as exc:
            self.problem(net, f"cannot be listed ({exc.strerror}); expected "
                              f"a directory of netdevs")
            return _BAD
        names = []
        trusted = True
        for name, is_dir in sorted(listed):
            self.pf_netdevs.add(name)
            if not is_valid_netdev_name(name):
                self.problem(f"{net}/{name}", f"invalid netdev name "
                                              f"{os.fsencode(name)!r}; "
                                              f"expected {NETDEV_EXPECTED}")
                trusted = False
            elif not is_dir:
                self.problem(f"{net}/{name}", "not a directory; expected "
                                              "the netdev's directory")
                trusted = False
            else:
                names.append(name)
        if not trusted:
            return _BAD
        if len(names) <= 1:
            return sys.intern(names[0]) if names else None
        uplinks, others = [], []
        for name in names:
            port = self.optional_value(
                f"{net}/{name}/phys_port_name", values.port_name,
                "taken as unknown when choosing the PF's netdev")
            if port is not None and _UPLINK.match(port):
                uplinks.append(name)
            elif port is None or not _REPRESENTOR.match(port):
                others.append(name)
        return sys.intern((uplinks or others or names)[0])

    # -- its VFs ----------------------------------------------------------

    def scan_vfs(self, pf: _Pf, path: str, rel: str, up: str,
                 entries: dict[str, os.DirEntry[str]],
                 drivers: dict[str, str]) -> None:
        links = []
        for name, entry in entries.items():
            if name.startswith("virtfn"):
                index = values.canonical_index(name[6:])
                if index is None or index > values.MAX_U16:
                    self.problem(f"{path}/{name}", "unexpected entry; "
                                 "expected virtfn<N>, N a VF index 0-65535")
                else:
                    links.append((index, name, entry))
        if not links:
            return
        links.sort()
        get = entries.get
        unlisted = "its VFs are not listed"
        vf_product = self.value(path + "/sriov_vf_device",
                                get("sriov_vf_device"),
                                values.vf_device_id, True, unlisted)
        offset = self.value(path + "/sriov_offset", get("sriov_offset"),
                            values.count, True, unlisted)
        stride = self.value(path + "/sriov_stride", get("sriov_stride"),
                            values.count, True, unlisted)
        if offset == 0:
            self.problem(path + "/sriov_offset", "0: the first VF would be "
                         "the PF itself; expected an offset of 1 or more; "
                         + unlisted)
            offset = _BAD
        if stride == 0 and len(links) > 1:
            self.problem(path + "/sriov_stride", "0 with several VFs: they "
                         "would share one address; expected 1 or more; "
                         + unlisted)
            stride = _BAD
        computed = isinstance(offset, int) and isinstance(stride, int)
        offset_n = offset if isinstance(offset, int) else 0
        stride_n = stride if isinstance(stride, int) else 0
        pf.vfs_listed = (pf.listed and computed
                         and isinstance(vf_product, str))
        if isinstance(vf_product, str):
            pf.vf_product = vf_product
        _domain, bus, slot, func = address_sort_key(pf.address)
        first = (bus << 8 | slot << 3 | func) + offset_n
        dom = pf.address[:pf.address.index(":")]
        parent, _, _ = path.rpartition("/")
        parent_rel = rel.rpartition("/")[0]
        dirs = self.listing(parent)
        if dirs is None:
            pf.vfs_listed = False
            return
        has_numa = "numa_node" in entries
        drivers_prefix = up + "bus/pci/drivers/"
        groups_prefix = up + "kernel/iommu_groups/"
        numa_values = self.numa_values
        vf_links = self.vf_links
        vf_parents = self.vf_parents
        rows = pf.vfs
        readlink, lstat, regular = os.readlink, os.lstat, stat.S_ISREG
        os_open, os_read, os_close = os.open, os.read, os.close
        groups_len = len(groups_prefix)
        for index, name, entry in links:
            link = f"{path}/{name}"
            if not entry.is_symlink():
                self.problem(link, f"{_entry_kind(entry)}; expected a "
                                   f"symbolic link ../<VF address>")
                continue
            try:
                text = readlink(link)
            except OSError as exc:
                self.problem(link, f"cannot be read ({exc.strerror}); "
                                   f"expected a symbolic link ../<VF address>")
                continue
            if computed:
                vf_rid = first + stride_n * index
                if vf_rid > values.MAX_U16:
                    self.problem(link, f"VF {index} by sriov_offset "
                                       f"{offset_n} and sriov_stride "
                                       f"{stride_n} is "
                                       f"beyond bus ff; expected VFs on "
                                       f"buses up to ff")
                    continue
                address = (f"{dom}:{vf_rid >> 8:02x}:{vf_rid >> 3 & 31:02x}"
                           f".{vf_rid & 7}")
                if text != "../" + address:
                    self.problem(link, self.misdirected(
                        text, pf.address, address, index, offset_n,
                        stride_n))
                    continue
            else:
                # The VFs will not be listed, but their own problems are.
                address = text[3:]
                if not (text.startswith("../")
                        and values.ADDRESS.match(address)):
                    self.problem(link, f"-> {text!r}; expected ../<VF "
                                       f"address>; not followed")
                    continue
            if address in vf_links:
                self.problem(link, f"reaches VF {address}, as "
                                   f"{vf_links[address]} does; expected "
                                   f"one link per VF; neither is listed")
                self.duplicates.add(address)
                continue
            vf_links[address] = link
            vf_path = f"{parent}/{address}"
            is_dir = dirs.get(address)
            if not is_dir:
                self.problem(vf_path, f"{name} of PF {pf.address} points "
                             f"here, but it is "
                             + ("not a directory" if is_dir is False
                                else "missing (the VF vanished)")
                             + "; expected the VF's directory")
                continue
            # The hot path: what follows runs once per VF, inlined.
            bad = False
            numa = None
            if has_numa:
                file = vf_path + "/numa_node"
                try:
                    mode = lstat(file).st_mode
                    if regular(mode):
                        fd = os_open(file, _O_READ)
                        try:
                            data = os_read(fd, _MAX_READ)
                        finally:
                            os_close(fd)
                        try:
                            numa = numa_values[data]
                        except KeyError:
                            try:
                                numa = values.numa_node(data)
                            except ValueError as exc:
                                self.problem(file, f"read {_shown(data)}; "
                                                   f"expected {exc}")
                                bad = True
                            else:
                                numa_values[data] = numa
                    else:
                        self.problem(file, f"{_kind(mode)}, expected a "
                                           f"regular file; not opened")
                        bad = True
                except OSError as exc:
                    self.problem(file, f"cannot be read ({exc.strerror}); "
                                       f"expected as on its PF")
                    bad = True
            driver = group = None
            file = vf_path + "/driver"
            try:
                driver = drivers[readlink(file)]
            except FileNotFoundError:
                pass
            except (KeyError, OSError):
                try:
                    driver = self.driver(file, drivers_prefix, drivers)
                except _Problem as problem:
                    self.problem(problem.path, problem.reason)
                    bad = True
            file = vf_path + "/iommu_group"
            try:
                text = readlink(file)
                number = text[groups_len:]
                if (text.startswith(groups_prefix) and number.isdigit()
                        and number.isascii() and len(number) < 10
                        and (number[0] != "0" or number == "0")):
                    group = int(number)
                else:
                    raise _Problem(file, "")
            except FileNotFoundError:
                pass
            except (OSError, _Problem):
                try:
                    group = self.iommu_group(file, groups_prefix)
                except _Problem as problem:
                    self.problem(problem.path, problem.reason)
                    bad = True
            if not bad:
                rows.append((address, numa, driver, group, index, link))
                vf_parents[address] = parent_rel

    @staticmethod
    def misdirected(text: str, pf: str, address: str, index: int,
                    offset: int, stride: int) -> str:
        if text == "../" + pf:
            what = " (the PF itself)"
        elif text.startswith("../") and values.ADDRESS.match(text[3:]):
            what = " (another device)"
        else:
            what = ""
        return (f"-> {text!r}{what}; expected ../{address}, VF {index} "
                f"by the PF's sriov_offset {offset} and sriov_stride "
                f"{stride}; not followed")

    # -- netdevs of VFs ---------------------------------------------------

    def vf_netdevs(self) -> tuple[dict[str, str], set[str]]:
        """VF address -> netdev, from <root>/class/net, and the VFs that
        a netdev link makes unlistable."""
        netdevs: dict[str, str] = {}
        refused: set[str] = set()
        if not self.pfs:
            return netdevs, refused
        net = self.base + "/class/net"
        try:
            real = os.path.realpath(net, strict=True)
        except FileNotFoundError:
            return netdevs, refused
        except OSError as exc:
            self.problem(net, f"cannot be resolved ({exc.strerror}); "
                              f"expected the directory of netdevs; VFs are "
                              f"listed without netdevs")
            return netdevs, refused
        if real != net:
            self.problem(net, f"resolves to {_printable(real)}; expected a "
                              f"directory, not a link; not followed; VFs "
                              f"are listed without netdevs")
            return netdevs, refused
        try:
            with os.scandir(net) as it:
                names = [e.name for e in it]
        except OSError as exc:
            self.problem(net, f"cannot be listed ({exc.strerror}); expected "
                              f"the directory of netdevs; VFs are listed "
                              f"without netdevs")
            return netdevs, refused
        skip = self.pf_netdevs
        vf_parents = self.vf_parents
        readlink = os.readlink
        for name in names:
            if name in skip:
                continue
            link = f"{net}/{name}"
            try:
                text = readlink(link)
            except OSError as exc:
                expected = f"expected ../../devices/<device>/net/{name}"
                if exc.errno == errno.EINVAL:
                    self.problem(link, f"{_path_kind(link)}; {expected}")
                elif exc.errno != errno.ENOENT:  # renamed or gone meanwhile
                    self.problem(link, f"cannot be read ({exc.strerror}); "
                                       f"{expected}")
                continue
            head, sep, tail = text.rpartition("/net/")
            expected = "expected ../../devices/<device>/net/"
            if (not sep or tail != name
                    or not head.startswith("../../devices/")):
                self.problem(link, f"-> {text!r}; {expected}{name}; not "
                                   f"followed")
                continue
            device = head[6:]
            parent, _, address = device.rpartition("/")
            if vf_parents.get(address) != parent:
                if "/." in device or "//" in device:
                    self.problem(link, f"-> {text!r}; {expected}{name} "
                                       f"without '.' or '..' after the "
                                       f"leading ../")
                continue  # not a VF of this scan: a virtual or other device
            if not is_valid_netdev_name(name):
                self.problem(link, f"invalid netdev name "
                                   f"{os.fsencode(name)!r} for VF {address}; "
                                   f"expected {NETDEV_EXPECTED}; the VF is "
                                   f"not listed")
                refused.add(address)
                continue
            old = netdevs.get(address)
            if old is None or name < old:
                netdevs[address] = sys.intern(name)
        return netdevs, refused

    # -- the records ------------------------------------------------------

    def records(self, netdevs: dict[str, str],
                refused: set[str]) -> tuple[PciDevice, ...]:
        make = PciDevice._make
        pf_addresses = {pf.address for pf in self.pfs}
        dropped = refused | self.duplicates
        out = []
        for pf in self.pfs:
            if pf.record is not None:
                out.append(pf.record)
            vendor, product, class_code = (pf.vendor, pf.vf_product,
                                           pf.class_code)
            parent, pf_netdev, listed = pf.address, pf.netdev, pf.vfs_listed
            for address, numa, driver, group, index, link in pf.vfs:
                if address in dropped:
                    continue
                if address in pf_addresses:
                    self.problem(link, f"points at {address}, a PF; "
                                       f"expected a VF")
                    continue
                netdev = netdevs.get(address)
                if netdev is not None and driver is None:
                    self.problem(link, f"VF {address} has netdev {netdev} "
                                       f"but no driver; expected none "
                                       f"without a driver; not listed")
                    continue
                if listed:
                    out.append(make((
                        address, DEV_TYPE_VF, vendor, product, class_code,
                        numa, driver, group, netdev, None, None, None, None,
                        parent, index, pf_netdev, None, None)))
        # Canonical addresses of one length compare as text, and a record
        # starts with its (unique) address; a longer domain is a larger.
        if len({len(pf.address) for pf in self.pfs}) == 1:
            out.sort()
        else:
            out.sort(key=_address_order)
        return tuple(out)


def _address_order(dev: PciDevice) -> tuple[int, str]:
    return len(dev[0]), dev[0]


def scan(sysfs_root: str | os.PathLike[str]) -> ScanResult:
    """Scan ``sysfs_root`` for SR-IOV PFs and VFs.

    Never blocks and never reads outside the root.  The result lists the
    well-formed devices, sorted by address, and one ScanIssue per problem
    found (the path, what was wrong and what was expected); a device with
    a problem is not listed unless the issue says it is kept.

    :raises SysfsRootError: the root or its bus/pci/devices cannot be read,
        or bus/pci/devices is a link.
    """
    root = os.path.realpath(os.fspath(sysfs_root))
    if not os.path.isdir(root):
        raise exception.SysfsRootError(
            path=os.fspath(sysfs_root),
            reason="no such directory; expected the root of a sysfs tree "
                   "such as /sys")
    state = _Scan(root)
    devices = state.scan()
    LOG.debug("Scanned %s: %d SR-IOV devices, %d problems", root,
              len(devices), len(state.errors))
    return ScanResult(sysfs_root=root, devices=devices,
                      errors=tuple(state.errors))
