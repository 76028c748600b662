"""Options of the Placement reporter.

``[pci_passthrough] nodename`` names the compute node's root provider.
The ``[placement]`` group is keystoneauth1's auth, session and adapter
options, registered as nova registers its own (nova/conf/placement.py):
a nova-compute host's existing ``[placement]`` section configures the
reporter too.  Two options of the reporter's own join them there, beside
keystoneauth1's ``timeout`` (which bounds each wait on the socket):
``call_deadline`` bounds a whole call and ``max_response_bytes`` the
answer it reads.  keystoneauth1 is imported only when these are registered
or listed, so commands that never talk to Placement start fast.
"""

import socket

from oslo_config import cfg

PLACEMENT_GROUP = "placement"
SERVICE_TYPE = "placement"
VALID_INTERFACES = ["internal", "public"]
CALL_DEADLINE = 60.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def call_bounds_opts() -> list[cfg.Opt]:
    """``[placement] call_deadline`` and ``max_response_bytes``."""
    return [
        cfg.FloatOpt(
            "call_deadline",
            default=CALL_DEADLINE,
            min=0.1,
            max=3600.0,
            help="Seconds one call to Placement may take in all: "
                 "connecting, waiting for the answer and reading it. A "
                 "call still running then fails as Placement "
                 "unavailable. Unlike timeout, which bounds each wait on "
                 "the socket, this also ends an answer that stalls or "
                 "trickles in.",
        ),
        cfg.IntOpt(
            "max_response_bytes",
            default=MAX_RESPONSE_BYTES,
            min=4096,
            max=1024 ** 3,
            help="Largest answer, in bytes, that one call to Placement "
                 "reads; a larger one fails the call as Placement "
                 "unavailable instead of filling the memory.",
        ),
    ]


def nodename(conf: cfg.ConfigOpts) -> str:
    """The option, or the host name when unset."""
    value: str | None = conf.pci_passthrough.nodename
    return value or socket.gethostname()


def _placement_group() -> cfg.OptGroup:
    return cfg.OptGroup(
        PLACEMENT_GROUP, title="Placement service client",
        help="How to reach the Placement service: keystoneauth1's auth, "
             "session and adapter options, as nova-compute's own "
             "[placement] section.")


def _adapter_opts() -> list[cfg.Opt]:
    from keystoneauth1 import loading as ks_loading

    options: list[cfg.Opt] = ks_loading.get_adapter_conf_options(
        include_deprecated=False)
    cfg.set_defaults(options, service_type=SERVICE_TYPE,
                     valid_interfaces=VALID_INTERFACES)
    return options


def register_placement_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[placement]`` on ``conf`` with keystoneauth1's loading
    helpers, and the reporter's call bounds; idempotent."""
    from keystoneauth1 import loading as ks_loading

    # The group may be nova's own, keystoneauth1's options registered
    # already: only the reporter's are added then.
    if PLACEMENT_GROUP not in conf or "service_type" not in conf.placement:
        conf.register_group(_placement_group())
        ks_loading.register_session_conf_options(conf, PLACEMENT_GROUP)
        ks_loading.register_auth_conf_options(conf, PLACEMENT_GROUP)
        ks_loading.register_adapter_conf_options(
            conf, PLACEMENT_GROUP, include_deprecated=False)
        conf.set_default("service_type", SERVICE_TYPE,
                         group=PLACEMENT_GROUP)
        conf.set_default("valid_interfaces", VALID_INTERFACES,
                         group=PLACEMENT_GROUP)
    conf.register_opts(call_bounds_opts(), group=PLACEMENT_GROUP)


def list_placement_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """``[placement]`` for oslo-config-generator: session, auth common
    and the documented plugins' options (password, admin_token), and
    the adapter's."""
    from keystoneauth1 import loading as ks_loading

    options: list[cfg.Opt] = [
        *ks_loading.get_session_conf_options(),
        *ks_loading.get_auth_common_conf_options(),
    ]
    seen = {o.dest for o in options}
    for plugin in ("password", "admin_token"):
        for opt in ks_loading.get_auth_plugin_conf_options(plugin):
            if opt.dest not in seen:
                seen.add(opt.dest)
                options.append(opt)
    options += [o for o in _adapter_opts() if o.dest not in seen]
    options += call_bounds_opts()
    return [(_placement_group(), options)]


def invalid_nodename(value: str, reason: str) -> Exception:
    from pci_passthrough import exception

    return exception.ConfigError(group="pci_passthrough",
                                 option="nodename", entry=repr(value),
                                 reason=reason)
