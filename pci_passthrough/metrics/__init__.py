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

The pool gauges are read by :mod:`.pools`, the agent's counts kept by
:mod:`.agent_counts`, both exposed by :mod:`.collector`; :mod:`.labels`
checks the label names and values.
"""

from pci_passthrough.exception import InvalidMetricsInput
from pci_passthrough.metrics.agent_counts import (
    CLAIM_BUCKETS,
    INCOMING_OUTCOMES,
    PLUG_BUCKETS,
)
from pci_passthrough.metrics.collector import Metrics, exposition
from pci_passthrough.metrics.labels import (
    MAX_LABEL_VALUES,
    PREFIX,
    pool_label_names,
)
from pci_passthrough.metrics.pools import (
    DEFAULT_TAG_LABELS,
    POOL_STATES,
    PoolCounts,
    PoolSource,
)

__all__ = [
    "CLAIM_BUCKETS",
    "DEFAULT_TAG_LABELS",
    "INCOMING_OUTCOMES",
    "MAX_LABEL_VALUES",
    "PLUG_BUCKETS",
    "POOL_STATES",
    "PREFIX",
    "InvalidMetricsInput",
    "Metrics",
    "PoolCounts",
    "PoolSource",
    "exposition",
    "pool_label_names",
]
