"""What the agent did, counted: its claims, plugs, releases, incoming
migrations, reconcile actions and doctor runs, and how long claims,
plugs and prepares took."""

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pci_passthrough.exception import InvalidMetricsInput
from pci_passthrough.metrics._histogram import Histogram
from pci_passthrough.metrics.labels import (
    MAX_LABEL_VALUES,
    PREFIX,
    kind_value,
)

# A claim is a SQLite transaction; a plug defines and starts libvirt
# networks, which takes from milliseconds to seconds.
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                 1.0, 2.5, 5.0, 10.0)
PLUG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                30.0, 60.0, 120.0)
#: How an incoming migration ends (its claims confirmed or freed).
INCOMING_OUTCOMES = ("completed", "aborted", "expired")

COUNTERS = {
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


class AgentCounts:
    """The agent's counters and histograms, thread safe.

    :param clock: seconds, monotonic (tests pass their own).
    :param wall_clock: Unix time, for when doctor last ran.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._findings: dict[str, int] = {}
        self._doctor_ran: float | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._reconcile: dict[str, int] = {}
        self._repairs: dict[str, int] = {}
        # Fixed outcomes, all exposed from the start: a rate of expiries
        # needs its zero before the first one.
        self._incoming_ends = dict.fromkeys(INCOMING_OUTCOMES, 0)
        self._claim_seconds = Histogram(CLAIM_BUCKETS)
        self._plug_seconds = Histogram(PLUG_BUCKETS)
        # A prepare claims and defines networks: a plug's durations.
        self._prepare_seconds = Histogram(PLUG_BUCKETS)

    # -- what the agent calls ------------------------------------------

    def claim_succeeded(self) -> None:
        """Count a claim that held devices."""
        self._add("claims")

    def claim_failed(self) -> None:
        """Count a claim refused or failed."""
        self._add("claim_failures")

    def plug_succeeded(self) -> None:
        """Count an instance whose networks were plugged."""
        self._add("plugs")

    def plug_failed(self) -> None:
        """Count a plug that failed."""
        self._add("plug_failures")

    def released(self, count: int = 1) -> None:
        """Count ``count`` instances whose devices were released."""
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
            value = kind_value("doctor finding kind", kind)
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
    def _timed(self, histogram: Histogram, ok: str,
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
        value = kind_value(what, kind)
        with self._lock:
            if value not in table and len(table) >= MAX_LABEL_VALUES:
                raise InvalidMetricsInput(
                    what=f"{what} {value!r}",
                    reason=f"already {MAX_LABEL_VALUES} kinds counted",
                    expected="one of the library's own kinds")
            table[value] = table.get(value, 0) + 1

    # -- the families -------------------------------------------------

    def families(self, with_samples: bool) -> list[Metric]:
        """The agent's families, with their samples when
        ``with_samples``."""
        families: list[Metric] = []
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
        for name, doc in COUNTERS.items():
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
