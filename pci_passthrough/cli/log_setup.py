"""Logging for the pci-passthrough command.

The command takes all of oslo.log's options (``--debug``, ``--log-file``,
``--log-config-append``...; a configuration file may set any of them),
but imports oslo.log itself only when they ask for something other than
its defaults. Importing oslo_log.log costs about 30 ms (its formatters
load oslo.serialization, oslo.context and dateutil), a fifth of the
command's start-up. With every logging option at its default, the
standard library is set up as oslo.log would set itself up: INFO and
above on stderr in oslo.log's default line format, the
``default_log_levels`` applied. (Only a traceback logged with a record
lacks oslo.log's per-line prefix.)
"""

import logging
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

# oslo_log._options holds the option lists oslo_log.log.register_options
# registers (and oslo.log's own sample-file entry point lists) without
# importing oslo_log.log. A unit test checks that register_options()
# below registers exactly what oslo.log's does.
from oslo_log import _options

CLI_OPTS: Sequence[cfg.Opt] = (*_options.common_cli_opts,
                               *_options.logging_cli_opts)
CONF_OPTS: Sequence[cfg.Opt] = (*_options.generic_log_opts,
                                *_options.log_opts)

#: The command's own defaults for oslo.log options: logs go to stderr,
#: as stdout carries the tables and JSON that scripts read.
COMMAND_DEFAULTS: dict[str, Any] = {"use_stderr": True}


def register_options(conf: cfg.ConfigOpts) -> None:
    """Register oslo.log's options with the command's defaults."""
    conf.register_cli_opts(CLI_OPTS)
    conf.register_opts(CONF_OPTS)
    for name, value in COMMAND_DEFAULTS.items():
        conf.set_default(name, value)


def _default(opt: cfg.Opt) -> Any:
    value = COMMAND_DEFAULTS.get(opt.dest, opt.default)
    return value if value is None else opt.type(value)


def needs_oslo_log(conf: cfg.ConfigOpts) -> bool:
    """Whether any logging option differs from its default."""
    return any(conf[opt.dest] != _default(opt)
               for opt in (*CLI_OPTS, *CONF_OPTS))


def plain_formatter(conf: cfg.ConfigOpts) -> logging.Formatter:
    """The line format oslo.log's ContextFormatter gives a record that
    has no request context and no instance, with the default options."""
    return logging.Formatter(conf.logging_default_format_string,
                             datefmt=conf.log_date_format,
                             defaults={"instance": ""})


def setup(conf: cfg.ConfigOpts, project: str) -> None:
    """Set logging up from the parsed options."""
    if needs_oslo_log(conf):
        from oslo_log import log

        log.setup(conf, project)
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(plain_formatter(conf))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for pair in conf.default_log_levels:
        name, _sep, level = pair.partition("=")
        logging.getLogger(name).setLevel(
            int(level) if level.isdigit() else level)
