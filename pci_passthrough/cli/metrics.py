"""pci-passthrough metrics: the host's VF pools in the Prometheus text
format, for node_exporter's textfile collector.

Read-only: the ledger is opened read-only, as ``claims`` does (a missing
ledger is no claims and is not created), and nothing on the host is
changed.  The operation counters of a one-shot command are zero: the
pool gauges (total, free, held, unhealthy VFs per PF and tags) are what
it is for; a nova-compute process registers ``HostAgent.metrics``
instead.  When the pools cannot be read (the ledger or sysfs unusable)
the output still replaces the last one, saying pool_source_up 0 with no
pool counts, and the command fails: a scraper never takes the last good
counts for fresh ones.  The tracker and prometheus-client are imported
inside the action: --help and the other commands never pay for them.
"""

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root

if TYPE_CHECKING:
    from pci_passthrough.metrics import PoolCounts


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "metrics", help="Print the VF pool metrics in the Prometheus text "
                        "format (node_exporter textfile collector).")
    add_sysfs_root_argument(parser)
    parser.add_argument(
        "--output", metavar="FILE", default=None,
        help="Write to FILE (replaced atomically, as the textfile "
             "collector wants: name it *.prom) instead of stdout.")
    parser.set_defaults(action_fn=run)


def run(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.config.settings import load_settings
    from pci_passthrough.metrics import pool_label_names

    labels = pool_label_names(load_settings(conf).device_specs.tag_names)
    pools: list[PoolCounts] | exception.PciPassthroughError
    try:
        pools = _read_pools(conf)
    except exception.PciPassthroughError as exc:
        pools = exc
    text = _exposition(pools, labels)
    path = conf.command.output
    if path is None:
        sys.stdout.write(text)
    else:
        try:
            _write_atomically(path, text)
        except OSError as exc:
            raise exception.MetricsOutputError(
                path=path, reason=exc.strerror or str(exc)) from exc
    if isinstance(pools, exception.PciPassthroughError):
        raise exception.MetricsSourceDown(
            reason=str(pools).rstrip("."),
            output=path or "the exposition printed") from pools
    return 0


def _read_pools(conf: cfg.ConfigOpts) -> list["PoolCounts"]:
    from pci_passthrough.tracker import HostTracker

    tracker, _ = HostTracker.from_conf(conf, sysfs_root(conf),
                                       readonly_ledger=True)
    try:
        return tracker.pool_counts()
    finally:
        tracker.close()


def _exposition(pools: "list[PoolCounts] | Exception",
                labels: Sequence[str]) -> str:
    """The exposition of ``pools``, or of a pool source that is down:
    pool_source_up 0 and no pool counts."""
    from pci_passthrough.metrics import Metrics, exposition
    from pci_passthrough.metrics import pools as pool_metrics

    def source() -> list["PoolCounts"]:
        if isinstance(pools, Exception):
            raise pools
        return pools

    # The collector logs a source that fails, with its traceback; here
    # the command's own error line says it, once.
    collector_log = pool_metrics.LOG
    quiet = _DropAll()
    collector_log.addFilter(quiet)
    try:
        return exposition(Metrics(pools=source, tag_labels=labels))
    finally:
        collector_log.removeFilter(quiet)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _write_atomically(path: str, text: str) -> None:
    # The collector must never read a half-written file, nor a crash
    # leave an empty one: write beside it, flush it to disk, then rename
    # over it and make the rename itself durable.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pci-passthrough-", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
