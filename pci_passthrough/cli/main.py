"""Entry point of the pci-passthrough command.

It parses the command line with oslo.config, so --config-file,
--config-dir, --debug and --log-file work as in every OpenStack service.
Each subcommand lives in its own module of this package, which offers
``add_parsers(subparsers)``; a parser sets ``action_fn`` to a callable
taking the ConfigOpts and returning the exit code.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log as logging

from pci_passthrough import exception, opts

LOG = logging.getLogger(__name__)

# The modules of pci_passthrough.cli that contribute subcommands.
COMMAND_MODULES = ("scan", "claims", "demo", "placement")


def _add_command_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"pci_passthrough.cli.{name}")
        module.add_parsers(subparsers)


def build_conf() -> cfg.ConfigOpts:
    """A fresh ConfigOpts with the library's, logging's and the CLI's
    options registered."""
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    logging.register_options(conf)
    # Logs go to stderr: stdout carries the tables and JSON scripts read.
    conf.set_default("use_stderr", True)
    conf.register_cli_opt(cfg.SubCommandOpt(
        "command",
        title="Commands",
        help="Run 'pci-passthrough COMMAND --help' for a command's options.",
        handler=_add_command_parsers,
    ))
    return conf


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conf = build_conf()
    try:
        conf(args, project="pci_passthrough", prog="pci-passthrough",
             default_config_files=[], default_config_dirs=[])
    except cfg.Error as exc:
        print(f"pci-passthrough: error: {exc}", file=sys.stderr)
        return 2
    logging.setup(conf, "pci_passthrough")
    try:
        code: int = conf.command.action_fn(conf)
    except exception.PciPassthroughError as exc:
        LOG.debug("Command failed", exc_info=True)
        print(f"pci-passthrough: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
