"""Prometheus metrics of one host: its VF pools, and what the agent did.

:class:`Metrics` is a prometheus-client collector.  It keeps its own
counts (no module state, never prometheus-client's global default
registry): a nova-compute process registers it in a registry of its own,
``pci-passthrough metrics`` prints :func:`exposition` for
node_exporter's textfile collector.

Families (Prometheus naming: ``_total`` counters, seconds):

``pci_passthrough_pool_vfs{pf, <tags>, state}``
    VFs of a pool by state: ``free`` (claimable), ``held`` (claimed),
    ``unhealthy`` (its PF is unhealthy) and ``other`` (neither, such as
    a VF waiting for its state to be restored).  The states partition the
    pool: ``sum without (state)`` is its size.
``pci_passthrough_pool_source_up``
    1 when the pool counts were read at this scrape, 0 when reading them
    failed (logged; the other families are still exposed).
``pci_passthrough_claims_total``, ``..._claim_failures_total``,
``..._plugs_total``, ``..._plug_failures_total``, ``..._releases_total``
    Operations of the agent (one claim may hold several ports).  A
    release is any end that freed an instance's devices: destroy, a
    completed outgoing or aborted incoming migration, an expired lease.
``pci_passthrough_incoming_migration_prepares_total``,
``..._incoming_migration_prepare_failures_total``
    The destination's claims (prepare_incoming_migration: claim and
    networks), apart from the instances' own claims; a repeated prepare
    counts again.
``pci_passthrough_incoming_migration_ends_total{outcome}``
    How incoming migrations ended: ``completed``, ``aborted`` or
    ``expired`` (lease not confirmed in time); each ends once.
``pci_passthrough_reconcile_actions_total{action}``,
``pci_passthrough_doctor_repairs_total{kind}``
    What reconcile and ``doctor --fix`` changed.
``pci_passthrough_doctor_findings{kind}``,
``pci_passthrough_doctor_last_run_timestamp_seconds``
    The findings the last ``doctor`` left (found and not repaired), by
    kind, each kind seen once staying at 0 after; and when it ran (Unix
    time), absent before the first run: alert on findings, and on a
    doctor that stopped running.
``pci_passthrough_claim_duration_seconds``,
``pci_passthrough_plug_duration_seconds``,
``pci_passthrough_incoming_migration_prepare_duration_seconds``
    Histograms of how long claims, plugs and prepares took, failed ones
    included.

Counters live as long as the process: the one-shot command prints them as
zero, the pool gauges are what it is for.
"""

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from pci_passthrough.exception import InvalidMetricsInput
from pci_passthrough.model.pci_address import normalize_address

LOG = logging.getLogger(__name__)
__all__ = ["InvalidMetricsInput", "Metrics", "PoolCounts", "exposition",
           "pool_label_names"]

PREFIX = "pci_passthrough_"
POOL_STATES = ("free", "held", "unhealthy", "other")
# A claim is a SQLite transaction; a plug defines and starts libvirt
# networks, which takes from milliseconds to seconds.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                 1.0, 2.5, 5.0, 10.0)
PLUG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0, 60.0, 120.0)
DEFAULT_TAG_LABELS = ("physical_network",)
#: How an incoming migration ends (its claims confirmed or freed).
INCOMING_OUTCOMES = ("completed", "aborted", "expired")
# Action and repair kinds are the values of the library's enums; the
# bound keeps a bug from creating series without end.
MAX_LABEL_VALUES = 64

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_RESERVED_LABELS = ("pf", "state", "le", "quantile")


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
        return self.total - self.free - self.held - self.unhealthy


PoolSource = Callable[[], Iterable[PoolCounts]]


def _check_tag_labels(tag_labels: Sequence[str]) -> tuple[str, ...]:
    names = tuple(tag_labels)
    for name in names:
        if (not isinstance(name, str) or not _LABEL_NAME.match(name)
                or name.startswith("__") or name in _RESERVED_LABELS):
            raise InvalidMetricsInput(
                what=f"tag label {name!r}",
                reason="not a Prometheus label name, or reserved",
                expected="[a-zA-Z_][a-zA-Z0-9_]*, not starting with __, "
                         "not " + ", ".join(_RESERVED_LABELS))
    if len(set(names)) != len(names):
        raise InvalidMetricsInput(what=f"tag labels {names!r}",
                                  reason="a label appears twice",
                                  expected="each label once")
    return names



def _kind_value(what: str, kind: object) -> str:
    """A kind label's value (a StrEnum member counts under its value).

    :raises InvalidMetricsInput: not a kind name.
    """
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidMetricsInput(
            what=f"{what} {kind!r}", reason="not a kind name",
            expected="lower-case letters, digits and _, 1 to 64")
    return str(kind)

def pool_label_names(tags: Iterable[str]) -> tuple[str, ...]:
    """The device_spec tag names that can be pool labels, sorted: those
    that are Prometheus label names and not reserved."""
    return tuple(sorted(
        t for t in set(tags)
        if isinstance(t, str) and _LABEL_NAME.match(t)
        and not t.startswith("__") and t not in _RESERVED_LABELS))


class _Histogram:
    """Cumulative bucket counts and sum, as Prometheus exposes them."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # A clock that stepped back gives no negative duration.
        seconds = max(0.0, seconds)
        self.total += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts,
                                strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound),
                        float(running)))
        return out


_COUNTERS = {
    "claims": "Claims that held devices for an instance's ports.",
    "claim_failures": "Claims refused or failed.",
    "plugs": "Instances whose networks were plugged.",
    "plug_failures": "Plugs that failed (their networks rolled back).",
    "releases": "Instances whose devices were released.",
    "incoming_migration_prepares": "Incoming migrations whose devices "
                                   "were claimed and networks defined.",
    "incoming_migration_prepare_failures": "Incoming migrations refused "
                                           "or failed to prepare.",
}


class Metrics(Collector):
    """The library's metrics, for a registry the caller owns.

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
        self._pools = pools
        self._tag_labels = _check_tag_labels(tag_labels)
        self._clock = clock
        self._wall_clock = wall_clock
        self._findings: dict[str, int] = {}
        self._doctor_ran: float | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._reconcile: dict[str, int] = {}
        self._repairs: dict[str, int] = {}
        # Fixed outcomes, all exposed from the start: a rate of expiries
        # needs its zero before the first one.
        self._incoming_ends = dict.fromkeys(INCOMING_OUTCOMES, 0)
        self._claim_seconds = _Histogram(CLAIM_BUCKETS)
        self._plug_seconds = _Histogram(PLUG_BUCKETS)
        # A prepare claims and defines networks: a plug's durations.
        self._prepare_seconds = _Histogram(PLUG_BUCKETS)

    def use_pools(self, pools: PoolSource) -> None:
        """Read the pool gauges from ``pools`` unless a source was
        given already (an agent given this collector calls it)."""
        with self._lock:
            if self._pools is None:
                self._pools = pools

    # -- what the agent calls ------------------------------------------

    def claim_succeeded(self) -> None:
        self._add("claims")

    def claim_failed(self) -> None:
        self._add("claim_failures")

    def plug_succeeded(self) -> None:
        self._add("plugs")

    def plug_failed(self) -> None:
        self._add("plug_failures")

    def released(self, count: int = 1) -> None:
        self._add("releases", count)

    def incoming_migration_ended(self, outcome: str) -> None:
        """Count the end of an incoming migration: one of
        INCOMING_OUTCOMES."""
        if not isinstance(outcome, str) or outcome not in INCOMING_OUTCOMES:
            raise InvalidMetricsInput(
                what=f"incoming migration outcome {outcome!r}",
                reason="not a known outcome",
                expected="one of " + ", ".join(INCOMING_OUTCOMES))
        with self._lock:
            self._incoming_ends[str(outcome)] += 1

    def reconcile_action(self, action: str) -> None:
        """Count one reconcile action (a value of its enum)."""
        self._add_kind(self._reconcile, "reconcile action", action)

    def doctor_repair(self, kind: str) -> None:
        """Count one repair of ``doctor --fix`` (a finding kind)."""
        self._add_kind(self._repairs, "doctor repair kind", kind)

    def doctor_ran(self, left: Iterable[str]) -> None:
        """Record a doctor run and the kinds of the findings it left
        (one entry per finding); every kind seen before and absent now
        reads 0."""
        counts: dict[str, int] = {}
        for kind in left:
            value = _kind_value("doctor finding kind", kind)
            counts[value] = counts.get(value, 0) + 1
        with self._lock:
            known = set(self._findings) | set(counts)
            if len(known) > MAX_LABEL_VALUES:
                raise InvalidMetricsInput(
                    what="doctor finding kinds",
                    reason=f"more than {MAX_LABEL_VALUES} kinds",
                    expected="the library's own kinds")
            self._findings = {k: counts.get(k, 0) for k in known}
            self._doctor_ran = self._wall_clock()

    @contextmanager
    def time_claim(self) -> Iterator[None]:
        """Time the block as a claim; count it as succeeded, or failed if
        it raises."""
        with self._timed(self._claim_seconds, "claims", "claim_failures"):
            yield

    @contextmanager
    def time_plug(self) -> Iterator[None]:
        """Time the block as a plug; count it as succeeded or failed."""
        with self._timed(self._plug_seconds, "plugs", "plug_failures"):
            yield

    @contextmanager
    def time_incoming_migration_prepare(self) -> Iterator[None]:
        """Time the block as the destination's claim of an incoming
        migration; count it as prepared, or failed if it raises."""
        with self._timed(self._prepare_seconds,
                         "incoming_migration_prepares",
                         "incoming_migration_prepare_failures"):
            yield

    @contextmanager
    def _timed(self, histogram: _Histogram, ok: str,
               failed: str) -> Iterator[None]:
        start = self._clock()
        outcome = failed
        try:
            yield
            outcome = ok
        finally:
            elapsed = self._clock() - start
            with self._lock:
                histogram.observe(elapsed)
                self._counts[outcome] += 1

    def _add(self, name: str, count: int = 1) -> None:
        if type(count) is not int or count < 0:
            raise InvalidMetricsInput(what=f"count of {name}",
                                      reason=f"got {count!r}",
                                      expected="an integer >= 0")
        with self._lock:
            self._counts[name] += count

    def _add_kind(self, table: dict[str, int], what: str,
                  kind: str) -> None:
        value = _kind_value(what, kind)
        with self._lock:
            if value not in table and len(table) >= MAX_LABEL_VALUES:
                raise InvalidMetricsInput(
                    what=f"{what} {value!r}",
                    reason=f"already {MAX_LABEL_VALUES} kinds counted",
                    expected="one of the library's own kinds")
            table[value] = table.get(value, 0) + 1

    # -- what a registry calls -------------------------------------------

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (and without reading pools)."""
        return self._families(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_samples=True)

    def _families(self, with_samples: bool) -> list[Metric]:
        families: list[Metric] = []
        families.extend(self._pool_families(with_samples))
        with self._lock:
            counts = dict(self._counts)
            reconcile = dict(self._reconcile)
            repairs = dict(self._repairs)
            ends = dict(self._incoming_ends)
            findings = dict(self._findings)
            doctor_ran = self._doctor_ran
            claim_hist = (self._claim_seconds.buckets(),
                          self._claim_seconds.total)
            plug_hist = (self._plug_seconds.buckets(),
                         self._plug_seconds.total)
            prepare_hist = (self._prepare_seconds.buckets(),
                            self._prepare_seconds.total)
        for name, doc in _COUNTERS.items():
            families.append(CounterMetricFamily(
                PREFIX + name, doc,
                value=counts[name] if with_samples else None))
        for name, doc, label, table in (
                ("reconcile_actions", "Networks reconcile changed, by "
                 "action.", "action", reconcile),
                ("doctor_repairs", "Repairs doctor --fix made, by finding "
                 "kind.", "kind", repairs),
                ("incoming_migration_ends", "Incoming migrations ended, by "
                 "outcome (completed, aborted, expired).", "outcome",
                 ends)):
            family = CounterMetricFamily(PREFIX + name, doc, labels=[label])
            if with_samples:
                for value, count in sorted(table.items()):
                    family.add_metric([value], count)
            families.append(family)
        left = GaugeMetricFamily(
            PREFIX + "doctor_findings", "Findings the last doctor run "
            "left, by kind.", labels=["kind"])
        ran = GaugeMetricFamily(
            PREFIX + "doctor_last_run_timestamp_seconds",
            "When doctor last ran (Unix time).")
        if with_samples:
            for kind, count in sorted(findings.items()):
                left.add_metric([kind], count)
            if doctor_ran is not None:
                ran.add_metric([], doctor_ran)
        families += [left, ran]
        for name, doc, (buckets, total) in (
                ("claim_duration_seconds", "Time a claim took.",
                 claim_hist),
                ("plug_duration_seconds", "Time a plug took.", plug_hist),
                ("incoming_migration_prepare_duration_seconds",
                 "Time an incoming migration's prepare took.",
                 prepare_hist)):
            if with_samples:
                families.append(HistogramMetricFamily(
                    PREFIX + name, doc, buckets=buckets, sum_value=total))
            else:
                families.append(HistogramMetricFamily(PREFIX + name, doc))
        return families

    def _pool_families(self, with_samples: bool) -> list[Metric]:
        labels = ["pf", *self._tag_labels, "state"]
        vfs = GaugeMetricFamily(
            PREFIX + "pool_vfs",
            "VFs of a pool by state (free, held, unhealthy, other).",
            labels=labels)
        up = GaugeMetricFamily(
            PREFIX + "pool_source_up",
            "1 if the pool counts were read at this scrape, else 0.")
        if not with_samples:
            return [vfs, up]
        summed = self._read_pools()
        for key, counts in sorted((summed or {}).items()):
            for state, value in zip(POOL_STATES, counts, strict=True):
                vfs.add_metric([*key, state], value)
        if self._pools is not None:
            up.add_metric([], 0 if summed is None else 1)
        return [vfs, up]

    def _read_pools(self) -> dict[tuple[str, ...], list[int]] | None:
        summed: dict[tuple[str, ...], list[int]] = {}
        if self._pools is None:
            return summed
        try:
            for pool in self._pools():
                if not isinstance(pool, PoolCounts):
                    raise InvalidMetricsInput(
                        what=f"pool {pool!r}", reason="not a PoolCounts",
                        expected="PoolCounts records")
                key = (pool.pf, *(pool.tags.get(tag, "")
                                  for tag in self._tag_labels))
                parts = (pool.free, pool.held, pool.unhealthy, pool.other)
                # Pools that differ only in what is not a label (a VF
                # bound to vfio-pci beside VFs with netdevs) add up.
                old = summed.setdefault(key, [0] * len(POOL_STATES))
                summed[key] = [a + b for a, b in zip(old, parts,
                                                     strict=True)]
        except Exception:
            # A scrape of the host process must not fail for our part.
            LOG.warning("Cannot read the pool counts for metrics",
                        exc_info=True)
            return None
        return summed


def exposition(metrics: Metrics) -> str:
    """The Prometheus text exposition of ``metrics`` alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode("utf-8")
