"""The library's oslo.privsep context, for a service without
CAP_NET_ADMIN.

nova-compute runs as an unprivileged user and does its privileged work
in oslo.privsep daemons, as os-vif plugs its VIFs.  Reading a netdev
(RTM_GETLINK) needs no privilege; writing one does: the VF netdev
restores of :mod:`pci_passthrough.hygiene.privileged` run in the daemon
of :data:`context`.

The daemon keeps CAP_NET_ADMIN and no other capability.  Without
CAP_SYS_ADMIN it cannot enter another network namespace: it restores in
the namespace of the process that started it.

The context is module-level, in a module of its own, because
privsep-helper finds it by this Python path (``--privsep_context
pci_passthrough.privsep.context``), which operators' rootwrap filters
name.  Like every privsep context, it reads its options from
oslo.config's global ``cfg.CONF``, group ``[pci_passthrough_privileged]``,
where nova-compute parses its configuration files and privsep-helper the
ones it is given; oslo.privsep registers them there when this module is
imported.
"""

from oslo_privsep import capabilities, priv_context

from pci_passthrough.config.opts import PRIVILEGED_GROUP

#: Seconds a restore may take in the daemon: a few netlink writes take
#: milliseconds; a daemon that does not answer must not hold a release
#: (or doctor) forever.  The VF then stays journalled, out of service,
#: and the next release or doctor --fix retries.
RESTORE_TIMEOUT = 30.0

#: The privsep context of the library: CAP_NET_ADMIN only.
context = priv_context.PrivContext(
    "pci_passthrough",
    cfg_section=PRIVILEGED_GROUP,
    pypath=__name__ + ".context",
    capabilities=[capabilities.CAP_NET_ADMIN],
    timeout=RESTORE_TIMEOUT,
)
