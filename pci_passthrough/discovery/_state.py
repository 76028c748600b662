"""What one scan has found so far, and how it records a problem.

One ScanState per scan() call: no state is shared between scans.
"""

import logging
import os
import stat
from collections.abc import Callable
from typing import TypeVar

from pci_passthrough.discovery import sysfs_files
from pci_passthrough.model.device import PciDevice, ScanIssue

T = TypeVar("T")

#: A value that was read and cannot be trusted (its problem recorded).
BAD = object()


class PfFound:
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


class ScanState:
    """The state of one scan of ``root``; problems are logged to
    ``log`` as warnings."""

    def __init__(self, root: str, log: logging.Logger) -> None:
        self.root = root
        # Paths are built as base + "/...": a root of "/" is the empty base.
        self.base = "" if root == "/" else root
        self.log = log
        self.errors: list[ScanIssue] = []
        self.pfs: list[PfFound] = []
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
        """Record (and log) a problem of ``path``."""
        path = sysfs_files.printable(path)
        self.log.warning("sysfs %s: %s", path, reason)
        self.errors.append(ScanIssue(path=path, reason=reason))

    def value(self, path: str, entry: os.DirEntry[str] | None,
              parse: Callable[[bytes], T], required: bool,
              consequence: str = "") -> T | object:
        """The parsed content of a file listed as ``entry``: None when
        absent and not required, BAD (with the problem recorded) when it
        cannot be trusted."""
        suffix = f"; {consequence}" if consequence else ""
        if entry is None:
            if not required:
                return None
            self.problem(path, f"missing; expected a file the kernel writes "
                               f"for every SR-IOV PF{suffix}")
            return BAD
        if not entry.is_file(follow_symlinks=False):
            self.problem(path, f"{sysfs_files.entry_kind(entry)}, expected "
                               f"a regular file; not opened{suffix}")
            return BAD
        try:
            data = sysfs_files.read(path)
        except OSError as exc:
            self.problem(path, f"cannot be read ({exc.strerror}); expected "
                               f"a readable attribute{suffix}")
            return BAD
        try:
            return parse(data)
        except ValueError as exc:
            self.problem(path, f"read {sysfs_files.shown(data)}; expected "
                               f"{exc}{suffix}")
            return BAD

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
            self.problem(path, f"{sysfs_files.kind(mode)}, expected a "
                               f"regular file; not opened; {consequence}")
            return None
        try:
            data = sysfs_files.read(path)
        except OSError:
            return None
        try:
            return parse(data)
        except ValueError as exc:
            self.problem(path, f"read {sysfs_files.shown(data)}; expected "
                               f"{exc}; {consequence}")
            return None

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
