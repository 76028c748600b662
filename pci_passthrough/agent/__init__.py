"""The host-level API a nova-compute fork calls.

HostAgent ties the scanner, the device tracker with its ledger, and the
network driver together.  It is the one path by which claims change
(the CLI's claim and free use it too), so that claims and networks move
together.  Each method is idempotent: calling it again after success, or
after a crash part-way, converges to the same state.  A failure part-way
through several ports undoes what the call did.

A live migration's claims are leased on both hosts (incoming, outgoing)
until confirmed; a VF's netdev state is journalled before its plug and
restored after; doctor() compares all of it with the host and repairs
what is safe.

HostAgent (host_agent) only admits each call (gate: counted, refused
once closed, serialised per instance) and hands it to the service whose
concern it is: lifecycle (start, refresh, close, reconcile), ports
(claim, plug, release), migrations, leases (their expiry, timed on
clock's clocks), host_placement (provider tree, requests,
allocations), and the doctor room's HostDoctor.  vf_hygiene journals
and restores VF netdevs for them; networks names the networks and wraps
the driver's steps; scan feeds sysfs to the tracker.
"""

from pci_passthrough.agent.gate import OperationGate
from pci_passthrough.agent.host_agent import HostAgent
from pci_passthrough.agent.lifecycle import ReconcileAction, StartReport
from pci_passthrough.agent.ports import PluggedPort

__all__ = ["HostAgent", "OperationGate", "PluggedPort", "ReconcileAction",
           "StartReport"]
