"""The PFs that cannot serve their VFs now, and what changed in the PFs'
health between two scans (logged for the operator)."""

from collections.abc import Iterable, Mapping

from oslo_log import log as logging

from pci_passthrough.discovery import health
from pci_passthrough.model.device import DEV_TYPE_PF, DEV_TYPE_VF, PciDevice
from pci_passthrough.model.pci_address import address_sort_key

LOG = logging.getLogger(__name__)


class PfHealth:
    """Which PFs of the last scan are unhealthy, and why."""

    def __init__(self) -> None:
        #: PF address -> why it cannot serve its VFs now.
        self.unhealthy: dict[str, str] = {}

    def reason(self, dev: PciDevice) -> str | None:
        """Why ``dev`` (a PF, or a VF through its PF) is unhealthy."""
        if dev.address in self.unhealthy:
            return f"unhealthy: PF {dev.address} " \
                f"{self.unhealthy[dev.address]}"
        pf = dev.parent_addr
        if pf is not None and pf in self.unhealthy:
            return f"unhealthy: its PF {pf} {self.unhealthy[pf]}"
        return None

    def rescan(self, devices: Iterable[PciDevice]) -> dict[str, str]:
        """Judge the PFs of a new scan; returns the previous verdicts."""
        was, self.unhealthy = self.unhealthy, health.pf_problems(devices)
        return was

    def changes(self, before: Mapping[str, PciDevice],
                now: Mapping[str, PciDevice], was_unhealthy: Mapping[str, str],
                held_vfs_of: Mapping[str, int]
                ) -> dict[str, tuple[str, ...]]:
        """What changed in the PFs' health between the scans ``before``
        and ``now``, logged; keyed as UpdateReport's fields."""
        numvfs_changed, rebound_vfs = [], []
        for address, dev in now.items():  # one pass: 16k VFs are common
            prev = before.get(address)
            if prev is None or (prev.driver, prev.numvfs) == (
                    dev.driver, dev.numvfs):
                continue
            if dev.dev_type == DEV_TYPE_PF and prev.numvfs != dev.numvfs:
                numvfs_changed.append(address)
            elif dev.dev_type == DEV_TYPE_VF and prev.driver != dev.driver:
                rebound_vfs.append(address)
        numvfs, rebound = _sorted(numvfs_changed), _sorted(rebound_vfs)
        unhealthy = _sorted(a for a, why in self.unhealthy.items()
                            if was_unhealthy.get(a) != why)
        recovered = _sorted(a for a in was_unhealthy
                            if a in now and a not in self.unhealthy)
        for address in numvfs:
            LOG.warning("PF %s now has %s VFs enabled (was %s)", address,
                        now[address].numvfs, before[address].numvfs)
        for address in rebound:
            LOG.warning("VF %s was rebound from driver %s to %s", address,
                        before[address].driver, now[address].driver)
        for address in unhealthy:
            held = held_vfs_of.get(address, 0)
            LOG.warning("PF %s %s: its VFs are not given out%s", address,
                        self.unhealthy[address],
                        f"; {held} held VF(s) kept" if held else "")
        for address in recovered:
            LOG.info("PF %s is healthy again: its VFs may be claimed",
                     address)
        return {"numvfs_changed": numvfs, "rebound": rebound,
                "unhealthy": unhealthy, "recovered": recovered}


def _sorted(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(addresses, key=address_sort_key))
