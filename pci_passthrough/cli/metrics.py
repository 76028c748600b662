"""pci-passthrough metrics: the host's VF pools in the Prometheus text
format, for node_exporter's textfile collector.

Read-only: the ledger is opened read-only, as ``claims`` does (a missing
ledger is no claims and is not created), and nothing on the host is
changed.  The operation counters of a one-shot command are zero: the
pool gauges (total, free, held, unhealthy VFs per PF and tags) are what
it is for; a nova-compute process registers ``HostAgent.metrics``
instead.  The tracker and prometheus-client are imported inside the
action: --help and the other commands never pay for them.
"""

import argparse
import os
import sys
import tempfile

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root


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
    from pci_passthrough.metrics import (
        Metrics,
        exposition,
        pool_label_names,
    )
    from pci_passthrough.tracker import HostTracker

    labels = pool_label_names(load_settings(conf).device_specs.tag_names)
    tracker, _ = HostTracker.from_conf(conf, sysfs_root(conf),
                                       readonly_ledger=True)
    try:
        text = exposition(Metrics(pools=tracker.pool_counts,
                                  tag_labels=labels))
    finally:
        tracker.close()
    if conf.command.output is None:
        sys.stdout.write(text)
        return 0
    try:
        _write_atomically(conf.command.output, text)
    except OSError as exc:
        raise exception.MetricsOutputError(
            path=conf.command.output,
            reason=exc.strerror or str(exc)) from exc
    return 0


def _write_atomically(path: str, text: str) -> None:
    # The collector must never read a half-written file: write beside it,
    # then rename over it.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pci-passthrough-", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
