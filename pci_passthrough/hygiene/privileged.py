"""The privileged side of VF netdev restores, and its caller's side.

:func:`restore` sends one journalled netdev state to the privsep daemon
of :data:`pci_passthrough.privsep.context`, whose one entrypoint,
:func:`restore_netdev_state`, restores it and does nothing else.

Only msgpack primitives cross the daemon's socket: the request is the
journal document (:func:`~pci_passthrough.hygiene.to_doc`), the
reply a list of ``[step name, value]`` pairs.  The daemon treats the
request as hostile and refuses anything but a well-formed journal
document (:func:`check_request`); the caller checks the reply the same
way (:func:`steps_from_reply`).

Importing oslo.privsep costs about 50 ms: only
:class:`~pci_passthrough.hygiene.access.PrivsepNetlinkAccess` imports
this module, on its first restore.
"""

from collections.abc import Mapping
from typing import Any

from pci_passthrough.config.opts import PRIVILEGED_GROUP
from pci_passthrough.exception import (
    NetdevStateError,
    PciPassthroughError,
)
from pci_passthrough.hygiene import netlink
from pci_passthrough.hygiene.journal import from_doc, to_doc
from pci_passthrough.hygiene.record import (
    NetdevState,
    RestoreStep,
    StepKind,
    is_valid_mac,
)
from pci_passthrough.model.netdev_name import check_netdev
from pci_passthrough.privsep import context

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
        :func:`~pci_passthrough.hygiene.to_doc` makes.
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
        (:func:`~pci_passthrough.hygiene.to_doc`).
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
