"""The [pci_passthrough] options.

Options are declared once, here; library code receives a ConfigOpts on
which register_opts() has been called and never reads the global cfg.CONF.
list_opts() is the oslo.config.opts entry point that oslo-config-generator
uses to write etc/pci_passthrough.conf.sample.

The privsep daemon that restores VF netdevs for an unprivileged service
has its own group, [pci_passthrough_privileged]: oslo.privsep's options,
registered by :func:`register_privileged_opts` (or by oslo.privsep on
the global cfg.CONF when pci_passthrough.privsep is imported), never by
:func:`register_opts`, so that the command line does not import
oslo.privsep at start-up.
"""

from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

GROUP = "pci_passthrough"
#: The privsep context's group (see pci_passthrough.privsep).
PRIVILEGED_GROUP = "pci_passthrough_privileged"
#: How netdev writes are made: the values of ``netdev_writes``.
NETDEV_WRITES = ("auto", "direct", "privsep")
#: The entry-point namespace of the network drivers.
NETWORK_DRIVERS_NAMESPACE = "pci_passthrough.network_drivers"
#: The forward modes of the libvirt_macvtap driver's networks.
MACVTAP_MODES = ("passthrough", "bridge", "private", "vepa")

#: libvirt keeps a network in ``<name>.xml`` files: NAME_MAX (255) leaves
#: 251 characters for the name.
LIBVIRT_NETWORK_NAME_MAX = 251
#: What follows the prefix: a canonical UUID, '-', a port index < 10000.
NETWORK_NAME_SUFFIX_MAX = 36 + 1 + 4
#: Longest prefix; with the suffix, far below LIBVIRT_NETWORK_NAME_MAX.
NETWORK_NAME_PREFIX_MAX = 24
# A letter or digit first: virsh would read a leading '-' as an option,
# and a leading '.' hides the network's files.  \Z, not $: oslo.config
# searches with the regex, and $ also matches before a final newline.
NETWORK_NAME_PREFIX_REGEX = (
    rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{NETWORK_NAME_PREFIX_MAX - 1}}}\Z")
NETWORK_NAME_PREFIX_EXPECTED = (
    f"1 to {NETWORK_NAME_PREFIX_MAX} ASCII letters, digits, '_', '.' or "
    f"'-', starting with a letter or digit")


def _group() -> cfg.OptGroup:
    # A new OptGroup per ConfigOpts: register_group() copies the group only
    # shallowly, so a shared one would share option overrides between
    # ConfigOpts instances.
    return cfg.OptGroup(
        GROUP,
        title="SR-IOV network passthrough",
        help="Which SR-IOV devices this host may assign, the PCI flavors "
             "that ask for them, and how their per-instance networks are "
             "made.",
    )


discovery_opts = [
    cfg.StrOpt(
        "sysfs_root",
        default="/sys",
        help="Root of the sysfs tree to scan for SR-IOV devices. Only tests "
             "and demos point it elsewhere.",
    ),
    cfg.MultiStrOpt(
        "device_spec",
        default=[],
        help="Which devices may be assigned, in the syntax of Nova's "
             "[pci] device_spec: a JSON object or a JSON list of objects "
             "with vendor_id, product_id, address (a glob string or a dict "
             "of regular expressions) or devname; every other key is a tag "
             "attached to the matching devices. A PF's address or devname "
             "also covers its VFs. The first matching spec decides. The "
             "option may be given several times. Tag names are a letter "
             "or '_' then up to 63 letters, digits, '_', '.' or '-'; "
             "name, device_type, dev_type, numa_policy and numa_node are "
             "reserved. Address regular expressions are matched in linear "
             "time: backreferences, lookarounds, conditionals, atomic "
             "groups and possessive repeats are refused, and a pattern "
             "may have at most 256 characters and expand to at most 512 "
             "states.",
    ),
]

flavor_opts = [
    cfg.MultiStrOpt(
        "flavor",
        default=[],
        help="A PCI flavor, as a JSON object with a \"name\" and the "
             "attributes a device must have: the keys of Nova's [pci] "
             "alias (vendor_id, product_id, device_type, numa_policy) and "
             "any tag that device_spec attaches. Flavors with the same "
             "name are alternatives. The option may be given several "
             "times. A name is 1 to 64 ASCII letters, digits, '_', '.' or "
             "'-', not starting with '.' or '-', so that the command line "
             "(FLAVOR[,FLAVOR...]) can name it.",
    ),
    cfg.ListOpt(
        "special_attributes",
        default=["group"],
        help="Attributes that never match by accident: a device carrying "
             "one of them is given only to a flavor that names that "
             "attribute with an equal value. Each is a device_spec tag "
             "name; keys every device has or that select devices "
             "(address, vendor_id, product_id, devname, device_type, "
             "dev_type, numa_policy, numa_node, name) are refused.",
    ),
    cfg.DictOpt(
        "physnet_flavors",
        default={},
        help="The PCI flavor of a macvtap port on each physical network, "
             "as physnet:flavor pairs separated by commas (physnet1:net1,"
             "physnet2:grp1), for ports whose nova flavor names none (its "
             "extra specs pci_passthrough_port:flavor:<physnet> or "
             "pci_passthrough_port:flavor). A port on a physical network "
             "not listed asks for a device of that physical_network and "
             "nothing else, so a device of a special group never serves "
             "it. Each flavor must be one the option flavor defines.",
    ),
    cfg.StrOpt(
        "state_path",
        default="/var/lib/pci_passthrough/claims.sqlite3",
        help="SQLite file recording every claim and free, so that a "
             "restarted agent has exactly the allocations it had.",
    ),
]

network_opts = [
    cfg.StrOpt(
        "network_driver",
        default="libvirt_macvtap",
        help="Network driver plugin, by its name in the entry point "
             "namespace pci_passthrough.network_drivers.",
    ),
    cfg.StrOpt(
        "network_name_prefix",
        default="pcipt-",
        regex=NETWORK_NAME_PREFIX_REGEX,
        help="Prefix of the per-instance network names "
             "(<prefix><instance uuid>-<port index>): "
             + NETWORK_NAME_PREFIX_EXPECTED + ". Networks whose whole name "
             "has this form belong to this library: reconciliation deletes "
             "those whose instance holds no claim.",
    ),
    cfg.IntOpt(
        "incoming_migration_timeout",
        default=1800,
        min=1,
        help="Seconds an incoming live migration may hold this host's "
             "devices before complete_incoming_migration confirms it. A "
             "lease not confirmed in time expires at the next refresh "
             "(or doctor --fix): its claims are freed and its networks "
             "deleted. An outgoing migration older than this is "
             "reported by doctor.",
    ),
    cfg.StrOpt(
        "netdev_writes",
        default="auto",
        choices=[
            ("auto", "Directly when this process has CAP_NET_ADMIN in "
                     "its effective capability set, else through "
                     "privsep."),
            ("direct", "Netlink from this process, which needs "
                       "CAP_NET_ADMIN."),
            ("privsep", "Through the oslo.privsep daemon of the context "
                        "pci_passthrough.privsep.context (options in "
                        "[pci_passthrough_privileged]), which keeps "
                        "CAP_NET_ADMIN only."),
        ],
        help="How the state of a VF netdev, journalled before a port is "
             "plugged, is written back after its release (VF hygiene). "
             "Reading needs no privilege, writing needs CAP_NET_ADMIN: "
             "an unprivileged nova-compute restores through privsep. A "
             "VF whose state cannot be restored is not handed out "
             "again until doctor --fix restores it.",
    ),
]


nodename_opts = [
    cfg.StrOpt(
        "nodename",
        help="Name of this host's compute node resource provider in "
             "Placement (nova-compute's hypervisor_hostname); the PF "
             "providers are named <nodename>_<PF address>. Default: the "
             "host name.",
    ),
]


def driver_config_opts() -> list[cfg.Opt]:
    """The CONFIG_OPTS of every installed network driver, each once.

    The drivers declare their options beside their code (the plugin
    contract); they join the same group.
    """
    from stevedore import ExtensionManager

    seen: dict[str, cfg.Opt] = {}
    manager: ExtensionManager[Any] = ExtensionManager(
        NETWORK_DRIVERS_NAMESPACE, invoke_on_load=False)
    for ext in sorted(manager, key=lambda e: e.name):
        for opt in getattr(ext.plugin, "CONFIG_OPTS", ()):
            seen.setdefault(opt.dest, opt)
    return list(seen.values())


def _all_opts() -> list[cfg.Opt]:
    return [*discovery_opts, *flavor_opts, *network_opts,
            *driver_config_opts(), *nodename_opts]


def _privileged_group() -> cfg.OptGroup:
    return cfg.OptGroup(
        PRIVILEGED_GROUP,
        title="SR-IOV network passthrough: privileged netdev writes",
        help="The oslo.privsep daemon that restores VF netdevs when "
             "[pci_passthrough] netdev_writes is privsep, or auto in a "
             "process without CAP_NET_ADMIN. It keeps CAP_NET_ADMIN "
             "only: capabilities defaults to CAP_NET_ADMIN here. These "
             "options are read from the service's global configuration, "
             "as oslo.privsep reads every context's.",
    )


def privileged_opts() -> list[cfg.Opt]:
    """oslo.privsep's options, the objects its contexts register."""
    # Imported here: oslo.privsep costs about 50 ms, which only a
    # privileged write needs.
    from oslo_privsep import priv_context

    return list(priv_context.OPTS)


def register_privileged_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [pci_passthrough_privileged] options on ``conf``.

    oslo.privsep registers them on the global cfg.CONF itself when
    pci_passthrough.privsep is imported; a service calls this to know
    the group earlier (to set defaults or validate its files).
    """
    conf.register_group(_privileged_group())
    conf.register_opts(privileged_opts(), group=PRIVILEGED_GROUP)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [pci_passthrough] options on ``conf``."""
    group = _group()
    conf.register_group(group)
    conf.register_opts(_all_opts(), group=group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator."""
    return [(_group(), _all_opts()),
            (_privileged_group(), privileged_opts())]


def set_defaults(
    conf: cfg.ConfigOpts,
    *,
    sysfs_root: str | None = None,
    state_path: str | None = None,
    special_attributes: Sequence[str] | None = None,
    network_driver: str | None = None,
    network_name_prefix: str | None = None,
    netdev_writes: str | None = None,
) -> None:
    """Change option defaults for a consuming service.

    register_opts(conf) must have been called first.
    """
    for name, value in (
        ("sysfs_root", sysfs_root),
        ("state_path", state_path),
        ("special_attributes", special_attributes),
        ("network_driver", network_driver),
        ("network_name_prefix", network_name_prefix),
        ("netdev_writes", netdev_writes),
    ):
        if value is not None:
            conf.set_default(name, value, group=GROUP)
