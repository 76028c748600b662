"""VF hygiene: a VF netdev's state, journalled before a plug and restored
exactly after.

This package holds the record (:class:`NetdevState`), its journal text
(:func:`to_json`, :func:`from_json`) or document of primitives
(:func:`to_doc`, :func:`from_doc`) and the comparison (:func:`diff`),
none of which needs netlink.  Reading and restoring live in
:mod:`pci_passthrough.hygiene.netlink`, imported only by callers
that touch netdevs.
"""

from pci_passthrough.exception import (
    InvalidNetdevState,
    NetdevGone,
    NetdevPermissionDenied,
    NetdevStateError,
    NetdevStateMismatch,
    NetnsUnavailable,
)
from pci_passthrough.hygiene.journal import (
    from_doc,
    from_json,
    to_doc,
    to_json,
)
from pci_passthrough.hygiene.record import (
    Difference,
    NetdevState,
    RestoreStep,
    StepKind,
    VfState,
    diff,
    plan_netdev_steps,
    plan_vf_steps,
)

__all__ = [
    "Difference",
    "InvalidNetdevState",
    "NetdevGone",
    "NetdevPermissionDenied",
    "NetdevState",
    "NetdevStateError",
    "NetdevStateMismatch",
    "NetnsUnavailable",
    "RestoreStep",
    "StepKind",
    "VfState",
    "diff",
    "from_doc",
    "from_json",
    "plan_netdev_steps",
    "plan_vf_steps",
    "to_doc",
    "to_json",
]
