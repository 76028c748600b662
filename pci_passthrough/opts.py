"""The library's options where a nova-compute fork imports them
(``from pci_passthrough import opts``); they are declared once, in
:mod:`pci_passthrough.config.opts`."""

from pci_passthrough.config.opts import (
    GROUP,
    PRIVILEGED_GROUP,
    list_opts,
    register_opts,
    register_privileged_opts,
    set_defaults,
)

__all__ = ["GROUP", "PRIVILEGED_GROUP", "list_opts", "register_opts",
           "register_privileged_opts", "set_defaults"]
