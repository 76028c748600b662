"""The pool gauges: the VF counts of each pool, as the agent's tracker
knows them, read at every scrape.

A source that fails is logged and exposed as pool_source_up 0; the
scrape of the host process goes on with the other families.
"""

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

from pci_passthrough.exception import InvalidMetricsInput
from pci_passthrough.metrics.labels import PREFIX
from pci_passthrough.model.pci_address import normalize_address

# Logged under the package's name, the one operators filter on.
LOG = logging.getLogger(__package__)

POOL_STATES = ("free", "held", "unhealthy", "other")
DEFAULT_TAG_LABELS = ("physical_network",)


@dataclasses.dataclass(frozen=True, slots=True)
class PoolCounts:
    """The VF counts of one pool, as the agent's tracker knows them.

    :param pf: the PCI address of the pool's PF (``0000:3b:00.0``).
    :param tags: the pool's device_spec tags (``physical_network``...);
        the collector exposes those it was given as labels.
    :param total: VFs in the pool; ``free``, ``held`` and ``unhealthy``
        are disjoint parts of it.
    """

    pf: str
    tags: Mapping[str, str]
    total: int
    free: int
    held: int
    unhealthy: int

    def __post_init__(self) -> None:
        what = f"pool of PF {self.pf!r}"
        try:
            canonical = normalize_address(self.pf)
        except (TypeError, ValueError, AttributeError):
            canonical = None
        if canonical != self.pf:
            raise InvalidMetricsInput(
                what=what, reason="pf is not a canonical PCI address",
                expected="dddd:bb:ss.f in lower case")
        if not isinstance(self.tags, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in self.tags.items()):
            raise InvalidMetricsInput(what=what, reason="bad tags",
                                      expected="a mapping of str to str")
        for name in ("total", "free", "held", "unhealthy"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise InvalidMetricsInput(
                    what=what, reason=f"{name} is {value!r}",
                    expected="an integer >= 0")
        if self.free + self.held + self.unhealthy > self.total:
            raise InvalidMetricsInput(
                what=what,
                reason=f"free {self.free} + held {self.held} + unhealthy "
                       f"{self.unhealthy} exceed total {self.total}",
                expected="disjoint parts of the total")

    @property
    def other(self) -> int:
        """VFs of the pool in none of the other states."""
        return self.total - self.free - self.held - self.unhealthy


PoolSource = Callable[[], Iterable[PoolCounts]]



def pool_families(pools: PoolSource | None, tag_labels: tuple[str, ...],
                  with_samples: bool) -> list[Metric]:
    """The pool_vfs and pool_source_up families, with the counts of
    ``pools`` labelled by ``tag_labels`` when ``with_samples``."""
    labels = ["pf", *tag_labels, "state"]
    vfs = GaugeMetricFamily(
        PREFIX + "pool_vfs",
        "VFs of a pool by state (free, held, unhealthy, other).",
        labels=labels)
    up = GaugeMetricFamily(
        PREFIX + "pool_source_up",
        "1 if the pool counts were read at this scrape, else 0.")
    if not with_samples:
        return [vfs, up]
    summed = _read_pools(pools, tag_labels)
    for key, counts in sorted((summed or {}).items()):
        for state, value in zip(POOL_STATES, counts, strict=True):
            vfs.add_metric([*key, state], value)
    if pools is not None:
        up.add_metric([], 0 if summed is None else 1)
    return [vfs, up]


def _read_pools(pools: PoolSource | None, tag_labels: tuple[str, ...]
                ) -> dict[tuple[str, ...], list[int]] | None:
    summed: dict[tuple[str, ...], list[int]] = {}
    if pools is None:
        return summed
    try:
        for pool in pools():
            if not isinstance(pool, PoolCounts):
                raise InvalidMetricsInput(
                    what=f"pool {pool!r}", reason="not a PoolCounts",
                    expected="PoolCounts records")
            key = (pool.pf, *(pool.tags.get(tag, "")
                              for tag in tag_labels))
            parts = (pool.free, pool.held, pool.unhealthy, pool.other)
            # Pools that differ only in what is not a label (a VF
            # bound to vfio-pci beside VFs with netdevs) add up.
            old = summed.setdefault(key, [0] * len(POOL_STATES))
            summed[key] = [a + b for a, b in zip(old, parts, strict=True)]
    except Exception:
        # A scrape of the host process must not fail for our part.
        LOG.warning("Cannot read the pool counts for metrics",
                    exc_info=True)
        return None
    return summed
