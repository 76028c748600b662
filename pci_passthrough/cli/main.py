"""Entry point of the pci-passthrough command.

It parses the command line with oslo.config, so --config-file,
--config-dir, --debug and --log-file work as in every OpenStack service.
Each subcommand lives in a module of this package (the demo's in
pci_passthrough.demo), which offers
``add_parsers(subparsers)``; a parser sets ``action_fn`` to a callable
taking the ConfigOpts and returning the exit code, and may set
``register_opts_fn`` to register only the library options it reads
(default: opts.register_opts, every option including the network
drivers', which loads every driver). The library's options are not
command-line options, so they are registered after parsing.

A command's module is imported only when the command line names the
command: ``--help`` lists the commands from the table below, and
``scan`` never loads the tracker, the agent, libvirt or the demo's
fixtures (see tools/bench/bench_startup.py for what start-up costs).
"""

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from typing import TypeAlias

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli import log_setup
from pci_passthrough.config import opts, settings

LOG = logging.getLogger(__name__)

#: Every command: name -> (its module, its help), in the order --help
#: lists them. A unit test checks the table against what the modules
#: declare. The demo's command lives with the demo, above the CLI: no
#: import of this package reaches it, only this table names it.
_CLI = "pci_passthrough.cli."
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": (_CLI + "scan",
             "List the SR-IOV PFs and VFs found in sysfs."),
    "explain": (_CLI + "claims",
                "Say for every device whether it serves a flavor, and if "
                "not, why."),
    "claims": (_CLI + "claims", "List who holds which device."),
    "claim": (_CLI + "claims",
              "Claim one device per flavor for an instance, all or "
              "nothing."),
    "free": (_CLI + "claims",
             "Delete an instance's networks, then free every device it "
             "holds."),
    "doctor": (_CLI + "doctor",
               "Find what differs between the ledger, sysfs, libvirt, the "
               "VF netdevs and Placement; --fix repairs what is safe."),
    "metrics": (_CLI + "metrics",
                "Print the VF pool metrics in the Prometheus text format "
                "(node_exporter textfile collector)."),
    "demo": ("pci_passthrough.demo.command",
             "Run the demo on embedded defaults (no daemon needed)."),
    "placement": (_CLI + "placement",
                  "Report the SR-IOV VFs to OpenStack Placement, or show "
                  "what would be reported and asked."),
}

SubParsers: TypeAlias = (
    "argparse._SubParsersAction[argparse.ArgumentParser]")


def modules_named(args: Sequence[str]) -> set[str]:
    """The modules of the commands ``args`` may name. A word that is an
    option's value (``--log-file scan``) loads a module too many, never
    one too few."""
    return {COMMANDS[word][0] for word in args if word in COMMANDS}


def command_parsers(modules: Collection[str]
                    ) -> Callable[[SubParsers], None]:
    """The handler that declares every command: the full parsers of
    ``modules``' commands, a name and help only for the others."""
    def add(subparsers: SubParsers) -> None:
        for name, (module_name, help_text) in COMMANDS.items():
            if name in subparsers.choices:
                continue
            if module_name in modules:
                importlib.import_module(module_name).add_parsers(
                    subparsers)
            else:
                subparsers.add_parser(name, help=help_text)
    return add


def build_conf(args: Sequence[str]) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with logging's and the CLI's options
    registered, for the command line ``args``."""
    conf = cfg.ConfigOpts()
    log_setup.register_options(conf)
    conf.register_cli_opt(cfg.SubCommandOpt(
        "command",
        title="Commands",
        help="Run 'pci-passthrough COMMAND --help' for a command's options.",
        handler=command_parsers(modules_named(args)),
    ))
    return conf


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conf = build_conf(args)
    try:
        settings.parse_command_line(
            conf, args, project="pci_passthrough", prog="pci-passthrough",
            default_config_files=[], default_config_dirs=[])
    except (cfg.Error, exception.ConfigError) as exc:
        print(f"pci-passthrough: error: {exc}", file=sys.stderr)
        return 2
    log_setup.setup(conf, "pci_passthrough")
    register: Callable[[cfg.ConfigOpts], None] = getattr(
        conf.command, "register_opts_fn", opts.register_opts)
    register(conf)
    try:
        # Every command checks the whole configuration, as HostAgent does.
        settings.load_settings(conf)
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
