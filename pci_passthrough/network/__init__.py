"""Network driver plugins (entry point namespace
pci_passthrough.network_drivers)."""

from oslo_config import cfg
from stevedore import ExtensionManager

NAMESPACE = "pci_passthrough.network_drivers"


def driver_config_opts() -> list[cfg.Opt]:
    """The CONFIG_OPTS of every installed network driver, each once."""
    seen: dict[str, cfg.Opt] = {}
    manager = ExtensionManager(NAMESPACE, invoke_on_load=False)
    for ext in sorted(manager, key=lambda e: e.name):
        for opt in getattr(ext.plugin, "CONFIG_OPTS", ()):
            seen.setdefault(opt.dest, opt)
    return list(seen.values())
