"""pci-passthrough demo: the command's parser; the demo itself
(:mod:`pci_passthrough.demo.run`) is imported when the command runs."""

import argparse

from oslo_config import cfg


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo", help="Run the demo on embedded defaults (no daemon "
                     "needed).")
    parser.add_argument(
        "--workdir", metavar="DIR", default=None,
        help="Write the simulated hosts here and keep them, instead of a "
             "temporary folder.")
    parser.set_defaults(action_fn=run)


def run(conf: cfg.ConfigOpts) -> int:
    from pci_passthrough.demo.run import run as run_demo
    return run_demo(conf)
