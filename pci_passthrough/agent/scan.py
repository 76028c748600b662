"""Sysfs scans of one host, fed to its device tracker."""

from pci_passthrough.config.devspec import DeviceSpecList
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.model.claims import UpdateReport
from pci_passthrough.model.device import ScanResult
from pci_passthrough.tracker import HostTracker


class HostScan:
    """Scans ``sysfs_root`` and updates the tracker with what the device
    specs make assignable.

    :param sysfs_root: option sysfs_root.
    :param specs: the parsed option device_spec.
    :param tracker: the host's device tracker.
    """

    def __init__(self, sysfs_root: str, specs: DeviceSpecList,
                 tracker: HostTracker) -> None:
        self._root = sysfs_root
        self._specs = specs
        self._tracker = tracker
        self._scanned = False

    @property
    def sysfs_root(self) -> str:
        return self._root

    def scan(self) -> tuple[ScanResult, UpdateReport]:
        """Scan now: what was found and what changed for the tracker."""
        result = sysfs_scan.scan(self._root)
        report = self._tracker.update_devices(result, self._specs)
        self._scanned = True
        return result, report

    def refresh(self) -> UpdateReport:
        """Scan now: what changed for the tracker."""
        return self.scan()[1]

    def ensure(self) -> None:
        """Scan unless a scan was made already: anything looked up
        before the first one would see no device at all."""
        if not self._scanned:
            self.refresh()
