"""Netdev restores through oslo.privsep, for a service without
CAP_NET_ADMIN.

nova-compute runs as an unprivileged user and does its privileged work
in oslo.privsep daemons, as os-vif plugs its VIFs.  Reading a netdev
(RTM_GETLINK) needs no privilege; writing one does.  This module holds
the library's one privsep context, :data:`context`, and its one
entrypoint, :func:`restore_netdev_state`, which restores one journalled
netdev state and does nothing else.

The daemon keeps CAP_NET_ADMIN and no other capability.  Without
CAP_SYS_ADMIN it cannot enter another network namespace: it restores in
the namespace of the process that started it.

Only msgpack primitives cross the daemon's socket: the request is the
journal document (:func:`~pci_passthrough.netdev_state.to_doc`), the
reply a list of ``[step name, value]`` pairs.  The daemon treats the
request as hostile and refuses anything but a well-formed journal
document (:func:`check_request`); the caller checks the reply the same
way (:func:`steps_from_reply`).

The context is module-level because privsep-helper finds it by its
Python path (``--privsep_context pci_passthrough.privsep.context``).
Like every privsep context, it reads its options from oslo.config's
global ``cfg.CONF``, group ``[pci_passthrough_privileged]``, where
nova-compute parses its configuration files and privsep-helper the ones
it is given; oslo.privsep registers them there when this module is
imported.  Importing oslo.privsep costs about 50 ms: only
:class:`~pci_passthrough.netdev_access.PrivsepNetlinkAccess` imports
this module, on its first restore.
"""

from collections.abc import Mapping
from typing import Any

from oslo_privsep import capabilities, priv_context

from pci_passthrough.exception import (
    NetdevStateError,
    PciPassthroughError,
)
from pci_passthrough.netdev_name import check_netdev
from pci_passthrough.netdev_state import netlink
from pci_passthrough.netdev_state.journal import from_doc, to_doc
from pci_passthrough.netdev_state.record import (
    NetdevState,
    RestoreStep,
    StepKind,
    is_valid_mac,
)
from pci_passthrough.opts import PRIVILEGED_GROUP

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

#: What the privileged side calls its input, in errors.
REQUEST = "privileged restore request"
#: A restore writes at most every VF setting, link down, MAC, MTU and
#: admin state once: 8 steps.
MAX_REPLY_STEPS = len(StepKind)


def check_request(request: object) -> NetdevState:
    """The state a restore request asks for; the daemon's only way in.

    :raises InvalidNetdevName: the netdev's name is not one the kernel
        accepts.
    :raises InvalidNetdevState: anything else is not exactly what
        :func:`~pci_passthrough.netdev_state.to_doc` makes.
    """
    if isinstance(request, Mapping) and "netdev" in request:
        check_netdev(request["netdev"], device=REQUEST)
    return from_doc(request, REQUEST)


def steps_to_reply(steps: tuple[RestoreStep, ...]) -> list[list[Any]]:
    """Restore steps as msgpack primitives."""
    return [[step.kind.name, list(step.value)
             if isinstance(step.value, tuple) else step.value]
            for step in steps]


def _step_value(kind: StepKind, value: object
                ) -> str | int | bool | tuple[int, int, int] | None:
    """``value`` when it is what a ``kind`` step writes, else None."""
    if kind in (StepKind.VF_MAC, StepKind.MAC):
        return value if isinstance(value, str) and is_valid_mac(
            value) else None
    if kind is StepKind.MTU:
        return value if type(value) is int else None
    if kind is StepKind.VF_VLAN:
        if isinstance(value, list | tuple) and len(value) == 3 and all(
                type(v) is int for v in value):
            return (value[0], value[1], value[2])
        return None
    return value if type(value) is bool else None


def steps_from_reply(reply: object, netdev: str
                     ) -> tuple[RestoreStep, ...]:
    """The restore steps the daemon reports for ``netdev``.

    :raises NetdevStateError: the reply is not what
        :func:`steps_to_reply` makes.
    """
    def bad(reason: str) -> NetdevStateError:
        return NetdevStateError(
            netdev=netdev, step="read the privsep daemon's reply",
            where="", reason=reason + "; expected a list of at most "
            f"{MAX_REPLY_STEPS} [step name, value] pairs")

    if not isinstance(reply, list | tuple):
        raise bad(f"got {type(reply).__name__}")
    if len(reply) > MAX_REPLY_STEPS:
        raise bad(f"got {len(reply)} steps")
    steps = []
    for item in reply:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise bad(f"got the step {item!r:.60}")
        name, value = item
        if not isinstance(name, str) or name not in StepKind.__members__:
            raise bad(f"got the step name {name!r:.60}")
        kind = StepKind[name]
        checked = _step_value(kind, value)
        if checked is None:
            raise bad(f"got the value {value!r:.60} for {name}")
        steps.append(RestoreStep(kind, checked))
    return tuple(steps)


@context.entrypoint
def restore_netdev_state(request: object) -> list[list[Any]]:
    """Privileged: restore one journalled netdev state.

    :param request: the journal document of the state
        (:func:`~pci_passthrough.netdev_state.to_doc`).
    :returns: the steps written (:func:`steps_to_reply`).
    :raises InvalidNetdevName: see :func:`check_request`.
    :raises InvalidNetdevState: see :func:`check_request`.
    :raises NetdevStateError: naming the netdev and the step.
    """
    return steps_to_reply(netlink.restore_state(check_request(request)))


def restore(journal: NetdevState) -> tuple[RestoreStep, ...]:
    """Restore ``journal`` through the privsep daemon, which is started
    on first use (by default with ``sudo privsep-helper``, or the
    context's ``helper_command``).

    :returns: the steps written, in order.
    :raises NetdevStateError: naming the netdev: the daemon refused or
        failed the restore, or could not be started or reached.
    """
    try:
        reply = restore_netdev_state(to_doc(journal))
    except PciPassthroughError:
        raise
    except Exception as exc:
        # Anything else comes from privsep itself: most often a helper
        # that sudo or rootwrap do not allow to run, or a daemon that
        # did not answer within RESTORE_TIMEOUT (PrivsepTimeout).
        raise NetdevStateError(
            netdev=journal.netdev, step="restore the state",
            where=" through the privsep daemon",
            reason=f"{type(exc).__name__}: {exc}; the daemon is started "
                   f"with [{PRIVILEGED_GROUP}] helper_command, by default "
                   f"'sudo privsep-helper --privsep_context "
                   f"{context.pypath} ...', which sudo or rootwrap must "
                   f"allow") from exc
    return steps_from_reply(reply, journal.netdev)
