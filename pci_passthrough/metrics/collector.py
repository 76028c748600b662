"""The collector a registry scrapes, and the text exposition of it
alone."""

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from pci_passthrough.metrics.agent_counts import AgentCounts
from pci_passthrough.metrics.labels import check_tag_labels
from pci_passthrough.metrics.pools import (
    DEFAULT_TAG_LABELS,
    PoolSource,
    pool_families,
)


class Metrics(AgentCounts, Collector):
    """The library's metrics, for a registry the caller owns: the pool
    gauges, then what the agent counted (AgentCounts).

    :param pools: returns the current counts of every pool (the agent's
        tracker); None exposes no pool gauges.
    :param tag_labels: device_spec tags exposed as pool labels; a pool
        without one has the empty value.
    :param clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, pools: PoolSource | None = None,
                 tag_labels: Sequence[str] = DEFAULT_TAG_LABELS,
                 clock: Callable[[], float] = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock, wall_clock)
        self._pools = pools
        self._pools_lock = threading.Lock()
        self._tag_labels = check_tag_labels(tag_labels)

    def use_pools(self, pools: PoolSource) -> None:
        """Read the pool gauges from ``pools`` unless a source was
        given already (an agent given this collector calls it)."""
        with self._pools_lock:
            if self._pools is None:
                self._pools = pools

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (and without reading pools)."""
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        """The families and their samples, the pools read now."""
        return self._families(with_samples=True)

    def _families(self, with_samples: bool) -> list[Metric]:
        return [*pool_families(self._pools, self._tag_labels, with_samples),
                *self.families(with_samples)]


def exposition(metrics: Metrics) -> str:
    """The Prometheus text exposition of ``metrics`` alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode("utf-8")
