"""Network driver plugins (entry point namespace
pci_passthrough.network_drivers)."""

from typing import TYPE_CHECKING, Any, cast

from oslo_config import cfg
from stevedore import ExtensionManager

from pci_passthrough import exception
from pci_passthrough.config.opts import NETWORK_DRIVERS_NAMESPACE

if TYPE_CHECKING:
    from pci_passthrough.network.base import NetworkDriver

NAMESPACE = NETWORK_DRIVERS_NAMESPACE


def load_network_driver(conf: cfg.ConfigOpts,
                        name: str | None = None) -> "NetworkDriver":
    """The driver the option network_driver (or ``name``) names, loaded
    through stevedore from the installed entry points.

    :raises NetworkDriverNotFound: naming the installed drivers.
    """
    from stevedore import driver as sv_driver
    from stevedore.exception import NoMatches

    name = name or conf.pci_passthrough.network_driver
    try:
        mgr: sv_driver.DriverManager[Any] = sv_driver.DriverManager(
            NAMESPACE, name, invoke_on_load=True, invoke_args=(conf,))
    except (NoMatches, RuntimeError) as exc:
        known = sorted(ExtensionManager(NAMESPACE).names())
        raise exception.NetworkDriverNotFound(
            name=name, known=", ".join(known) or "none") from exc
    return cast("NetworkDriver", mgr.driver)
