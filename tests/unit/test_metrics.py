"""Metrics, read back with prometheus-client's own text parser."""

import enum
import logging
import os
import threading
from collections.abc import Iterable, Iterator

import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from pci_passthrough import exception
from pci_passthrough.metrics import (
    CLAIM_BUCKETS,
    INCOMING_OUTCOMES,
    MAX_LABEL_VALUES,
    PLUG_BUCKETS,
    InvalidMetricsInput,
    Metrics,
    PoolCounts,
    exposition,
)

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "100"))
SEEDED = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
PF_A = "0000:3b:00.0"
PF_B = "0000:af:00.0"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family types by name, and every sample by (name, labels)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return types, samples


def _pool_series(samples: Samples) -> dict[tuple[tuple[str, str], ...],
                                           float]:
    return {labels: value for (name, labels), value in samples.items()
            if name == "pci_passthrough_pool_vfs"}


class _Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- pools ---------------------------------------------------------------

def test_pool_gauges_by_state_with_labels() -> None:
    pools = [
        PoolCounts(PF_A, {"physical_network": "physnet1", "group": "g"},
                   total=8, free=5, held=2, unhealthy=0),
        PoolCounts(PF_B, {}, total=4, free=0, held=1, unhealthy=2),
    ]
    types, samples = _parse(exposition(Metrics(lambda: pools)))
    assert types["pci_passthrough_pool_vfs"] == "gauge"
    assert types["pci_passthrough_pool_source_up"] == "gauge"
    series = _pool_series(samples)
    assert series == {
        (("pf", PF_A), ("physical_network", "physnet1"),
         ("state", "free")): 5.0,
        (("pf", PF_A), ("physical_network", "physnet1"),
         ("state", "held")): 2.0,
        (("pf", PF_A), ("physical_network", "physnet1"),
         ("state", "unhealthy")): 0.0,
        (("pf", PF_A), ("physical_network", "physnet1"),
         ("state", "other")): 1.0,
        (("pf", PF_B), ("physical_network", ""), ("state", "free")): 0.0,
        (("pf", PF_B), ("physical_network", ""), ("state", "held")): 1.0,
        (("pf", PF_B), ("physical_network", ""),
         ("state", "unhealthy")): 2.0,
        (("pf", PF_B), ("physical_network", ""), ("state", "other")): 1.0,
    }
    assert samples[("pci_passthrough_pool_source_up", ())] == 1.0


def test_tag_labels_are_the_ones_asked_for() -> None:
    pool = PoolCounts(PF_A, {"physical_network": "p1", "trusted": "true"},
                      total=1, free=1, held=0, unhealthy=0)
    metrics = Metrics(lambda: [pool],
                      tag_labels=("physical_network", "trusted"))
    labels = {dict(k)["trusted"] for k in _pool_series(
        _parse(exposition(metrics))[1])}
    assert labels == {"true"}


def test_pools_differing_outside_the_labels_add_up() -> None:
    # One PF, VFs with netdevs and a VF bound to vfio-pci: two pools of
    # the tracker, one series per state here.
    pools = [PoolCounts(PF_A, {"physical_network": "p"}, 3, 1, 2, 0),
             PoolCounts(PF_A, {"physical_network": "p"}, 1, 1, 0, 0)]
    series = _pool_series(_parse(exposition(Metrics(lambda: pools)))[1])
    free = [v for k, v in series.items() if ("state", "free") in k]
    assert free == [2.0]
    assert sum(series.values()) == 4.0


def test_failing_pool_source_sets_up_to_zero_and_keeps_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Iterable[PoolCounts]:
        raise exception.LedgerError(path="/x", reason="locked")

    metrics = Metrics(broken)
    metrics.claim_succeeded()
    with caplog.at_level(logging.WARNING, "pci_passthrough.metrics"):
        _, samples = _parse(exposition(metrics))
    assert samples[("pci_passthrough_pool_source_up", ())] == 0.0
    assert _pool_series(samples) == {}
    assert samples[("pci_passthrough_claims_total", ())] == 1.0
    assert "Cannot read the pool counts" in caplog.text
    assert "locked" in caplog.text


def test_source_giving_something_else_is_a_failed_read() -> None:
    metrics = Metrics(lambda: [("0000:3b:00.0", 4)])  # type: ignore
    _, samples = _parse(exposition(metrics))
    assert samples[("pci_passthrough_pool_source_up", ())] == 0.0


def test_without_a_pool_source_no_pool_series() -> None:
    _, samples = _parse(exposition(Metrics()))
    assert _pool_series(samples) == {}
    assert ("pci_passthrough_pool_source_up", ()) not in samples


label_values = hst.text(max_size=30)


@SEEDED
@given(hst.lists(hst.tuples(
    hst.integers(0, 0xFF), label_values,
    hst.integers(0, 50), hst.integers(0, 50), hst.integers(0, 50),
    hst.integers(0, 50)), max_size=6))
def test_any_pools_read_back_exactly(
        rows: list[tuple[int, str, int, int, int, int]]) -> None:
    pools = [PoolCounts(f"0000:{bus:02x}:00.0", {"physical_network": net},
                        total=free + held + bad + other, free=free,
                        held=held, unhealthy=bad)
             for bus, net, free, held, bad, other in rows]
    series = _pool_series(_parse(exposition(Metrics(lambda: pools)))[1])
    expected: dict[tuple[tuple[str, str], ...], float] = {}
    for pool in pools:
        for state, value in (("free", pool.free), ("held", pool.held),
                             ("unhealthy", pool.unhealthy),
                             ("other", pool.other)):
            key = (("pf", pool.pf),
                   ("physical_network", pool.tags["physical_network"]),
                   ("state", state))
            expected[key] = expected.get(key, 0.0) + value
    assert series == expected
    # The states partition the pools.
    assert sum(series.values()) == sum(p.total for p in pools)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"pf": "0000:3B:00.0"}, "canonical PCI address"),
    ({"pf": "3b:00.0"}, "canonical PCI address"),
    ({"pf": 5}, "canonical PCI address"),
    ({"tags": {"physical_network": 1}}, "bad tags"),
    ({"tags": ["physical_network"]}, "bad tags"),
    ({"total": -1}, "total is -1"),
    ({"free": True}, "free is True"),
    ({"held": 1.0}, "held is 1.0"),
    ({"unhealthy": 5}, "exceed total 4"),
])
def test_pool_counts_refuse_bad_input(kwargs: dict[str, object],
                                      words: str) -> None:
    fields: dict[str, object] = {"pf": PF_A, "tags": {}, "total": 4,
                                 "free": 1, "held": 1, "unhealthy": 1}
    fields.update(kwargs)
    with pytest.raises(InvalidMetricsInput, match=words) as info:
        PoolCounts(**fields)  # type: ignore[arg-type]
    assert "pool of PF" in str(info.value)


@pytest.mark.parametrize("labels", [
    ("pf",), ("state",), ("le",), ("__x",), ("physical-network",),
    ("1net",), ("",), ("a", "a"),
])
def test_bad_tag_labels_are_refused(labels: tuple[str, ...]) -> None:
    with pytest.raises(InvalidMetricsInput, match="tag label"):
        Metrics(tag_labels=labels)


# -- counters ------------------------------------------------------------

class Action(enum.StrEnum):
    DELETED = "deleted"
    RESTORED = "restored"


def test_counters_count_what_the_agent_reports() -> None:
    metrics = Metrics()
    metrics.claim_succeeded()
    metrics.claim_succeeded()
    metrics.claim_failed()
    metrics.plug_succeeded()
    metrics.plug_failed()
    metrics.released()
    metrics.released(3)
    metrics.reconcile_action(Action.DELETED)
    metrics.reconcile_action("deleted")
    metrics.reconcile_action(Action.RESTORED)
    metrics.doctor_repair("orphan_network")
    types, samples = _parse(exposition(metrics))
    expected = {
        "pci_passthrough_claims": 2, "pci_passthrough_claim_failures": 1,
        "pci_passthrough_plugs": 1, "pci_passthrough_plug_failures": 1,
        "pci_passthrough_releases": 4,
    }
    for name, value in expected.items():
        assert types[name] == "counter"
        assert samples[(name + "_total", ())] == value
    assert types["pci_passthrough_reconcile_actions"] == "counter"
    assert samples[("pci_passthrough_reconcile_actions_total",
                    (("action", "deleted"),))] == 2
    assert samples[("pci_passthrough_reconcile_actions_total",
                    (("action", "restored"),))] == 1
    assert samples[("pci_passthrough_doctor_repairs_total",
                    (("kind", "orphan_network"),))] == 1
    # No _created series: the text is for node_exporter's textfile.
    assert not any(name.endswith("_created") for name, _ in samples)


@pytest.mark.parametrize("kind", ["", "Deleted", "a b", "x" * 65, 5,
                                  'a"b', "é"])
def test_bad_kinds_are_refused(kind: object) -> None:
    metrics = Metrics()
    with pytest.raises(InvalidMetricsInput, match="reconcile action"):
        metrics.reconcile_action(kind)  # type: ignore[arg-type]
    with pytest.raises(InvalidMetricsInput, match="doctor repair kind"):
        metrics.doctor_repair(kind)  # type: ignore[arg-type]


def test_kinds_are_bounded() -> None:
    metrics = Metrics()
    for i in range(MAX_LABEL_VALUES):
        metrics.reconcile_action(f"k{i}")
    metrics.reconcile_action("k0")  # a known kind still counts
    with pytest.raises(InvalidMetricsInput, match="already 64 kinds"):
        metrics.reconcile_action("one_more")


def test_doctor_findings_by_kind_and_when_it_ran() -> None:
    metrics = Metrics(wall_clock=lambda: 1_700_000_000.5)
    types, samples = _parse(exposition(metrics))
    assert types["pci_passthrough_doctor_findings"] == "gauge"
    assert not any(name.startswith("pci_passthrough_doctor_last_run")
                   for name, _ in samples)
    metrics.doctor_ran(["orphan_network", "orphan_network", "pf_unhealthy"])
    _, samples = _parse(exposition(metrics))
    assert samples[("pci_passthrough_doctor_findings",
                    (("kind", "orphan_network"),))] == 2
    assert samples[("pci_passthrough_doctor_last_run_timestamp_seconds",
                    ())] == 1_700_000_000.5
    metrics.doctor_ran([])
    _, samples = _parse(exposition(metrics))
    assert samples[("pci_passthrough_doctor_findings",
                    (("kind", "orphan_network"),))] == 0
    assert samples[("pci_passthrough_doctor_findings",
                    (("kind", "pf_unhealthy"),))] == 0


def test_doctor_finding_kinds_are_checked_and_bounded() -> None:
    metrics = Metrics()
    for kind in ("", "Orphan", "a b", 7):
        with pytest.raises(InvalidMetricsInput, match="doctor finding"):
            metrics.doctor_ran([kind])  # type: ignore[list-item]
    with pytest.raises(InvalidMetricsInput, match="more than 64 kinds"):
        metrics.doctor_ran([f"k{i}" for i in range(MAX_LABEL_VALUES + 1)])
    # Nothing of a refused run is kept.
    assert "pci_passthrough_doctor_findings{" not in exposition(metrics)


def test_incoming_migration_ends_by_outcome_start_at_zero() -> None:
    metrics = Metrics()
    types, samples = _parse(exposition(metrics))
    name = "pci_passthrough_incoming_migration_ends"
    assert types[name] == "counter"
    series = {labels: value for (n, labels), value in samples.items()
              if n == name + "_total"}
    assert series == {(("outcome", o),): 0 for o in INCOMING_OUTCOMES}
    metrics.incoming_migration_ended("expired")
    metrics.incoming_migration_ended("expired")
    metrics.incoming_migration_ended("completed")
    _, samples = _parse(exposition(metrics))
    assert {o: samples[(name + "_total", (("outcome", o),))]
            for o in INCOMING_OUTCOMES} == {
        "completed": 1, "aborted": 0, "expired": 2}


@pytest.mark.parametrize("outcome", ["", "Expired", "released", 1, None])
def test_unknown_incoming_outcomes_are_refused(outcome: object) -> None:
    metrics = Metrics()
    with pytest.raises(InvalidMetricsInput,
                       match="incoming migration outcome"):
        metrics.incoming_migration_ended(outcome)  # type: ignore[arg-type]
    _, samples = _parse(exposition(metrics))
    assert not any(v for (n, _), v in samples.items()
                   if n.endswith("incoming_migration_ends_total"))


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_bad_release_counts_are_refused(count: object) -> None:
    with pytest.raises(InvalidMetricsInput, match="count of releases"):
        Metrics().released(count)  # type: ignore[arg-type]


def test_counts_from_many_threads_add_up() -> None:
    metrics = Metrics()

    def work() -> None:
        for _ in range(2000):
            metrics.claim_succeeded()
            with metrics.time_plug():
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, samples = _parse(exposition(metrics))
    assert samples[("pci_passthrough_claims_total", ())] == 16000
    assert samples[("pci_passthrough_plug_duration_seconds_count",
                    ())] == 16000


# -- histograms ----------------------------------------------------------

@pytest.mark.parametrize(("timer", "family", "ok", "failed", "bounds"), [
    ("time_claim", "claim_duration_seconds", "claims", "claim_failures",
     CLAIM_BUCKETS),
    ("time_plug", "plug_duration_seconds", "plugs", "plug_failures",
     PLUG_BUCKETS),
    ("time_incoming_migration_prepare",
     "incoming_migration_prepare_duration_seconds",
     "incoming_migration_prepares", "incoming_migration_prepare_failures",
     PLUG_BUCKETS),
])
def test_timers_observe_seconds_and_count_outcomes(
        timer: str, family: str, ok: str, failed: str,
        bounds: tuple[float, ...]) -> None:
    clock = _Clock()
    metrics = Metrics(clock=clock)
    durations = [0.003, 0.2, 7.0]
    for seconds in durations:
        with getattr(metrics, timer)():
            clock.now += seconds
    with pytest.raises(exception.ClaimFailed), getattr(metrics, timer)():
        clock.now += 500.0
        raise exception.ClaimFailed(instance="i", port=0, flavor="f",
                                    reason="none free")
    with getattr(metrics, timer)():
        clock.now -= 1.0  # a clock that steps back counts as 0 s
    types, samples = _parse(exposition(metrics))
    name = "pci_passthrough_" + family
    assert types[name] == "histogram"
    observed = [*durations, 500.0, 0.0]
    for bound in bounds:
        assert samples[(name + "_bucket", (("le", repr(bound)),))] == sum(
            1 for d in observed if d <= bound), bound
    assert samples[(name + "_bucket", (("le", "+Inf"),))] == 5
    assert samples[(name + "_count", ())] == 5
    assert samples[(name + "_sum", ())] == pytest.approx(sum(observed))
    assert samples[(f"pci_passthrough_{ok}_total", ())] == 4
    assert samples[(f"pci_passthrough_{failed}_total", ())] == 1


# -- registries ----------------------------------------------------------

@pytest.fixture
def nova_registry() -> Iterator[CollectorRegistry]:
    """A registry as a nova-compute process keeps its own metrics in."""
    registry = CollectorRegistry()
    counter = prometheus_client.Counter(
        "nova_compute_instances_built", "Instances built.",
        registry=registry)
    counter.inc(3)
    yield registry


def test_nova_compute_registers_the_collector_in_its_registry(
        nova_registry: CollectorRegistry) -> None:
    calls = []

    def pools() -> list[PoolCounts]:
        calls.append(1)
        return [PoolCounts(PF_A, {}, 2, 1, 1, 0)]

    metrics = Metrics(pools)
    nova_registry.register(metrics)
    # Registering describes the families without reading the pools.
    assert calls == []
    metrics.claim_succeeded()
    text = prometheus_client.generate_latest(nova_registry).decode()
    _, samples = _parse(text)
    assert samples[("nova_compute_instances_built_total", ())] == 3
    assert samples[("pci_passthrough_claims_total", ())] == 1
    assert len(_pool_series(samples)) == 4
    assert calls == [1]
    # The same names twice in one registry are refused by the registry.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        nova_registry.register(Metrics())
    # Nothing reaches prometheus-client's global default registry.
    default = prometheus_client.REGISTRY
    assert default.get_sample_value("pci_passthrough_claims_total") is None
    nova_registry.unregister(metrics)
    assert "pci_passthrough" not in prometheus_client.generate_latest(
        nova_registry).decode()


def test_two_collectors_share_nothing() -> None:
    first, second = Metrics(), Metrics()
    first.claim_failed()
    assert _parse(exposition(second))[1][
        ("pci_passthrough_claim_failures_total", ())] == 0
    assert _parse(exposition(first))[1][
        ("pci_passthrough_claim_failures_total", ())] == 1


def test_error_is_a_library_error() -> None:
    assert issubclass(InvalidMetricsInput, exception.PciPassthroughError)
