"""pci-passthrough explain, claims, claim and free: the tracker for
operators and scripts. They share the agent's ledger (option state_path),
so what they show and change is what the agent sees.

claim and free change claims through HostAgent, as nova-compute does, so
that claims and networks move together: free deletes the instance's
networks before it frees their devices, and refuses (freeing nothing)
when the network driver cannot be reached."""

import argparse
from collections.abc import Callable

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.agent import HostAgent
from pci_passthrough.cli import output
from pci_passthrough.cli.scan import add_sysfs_root_argument, sysfs_root
from pci_passthrough.model.claims import Allocation, PortRequest
from pci_passthrough.model.instance_id import canonical_uuid
from pci_passthrough.tracker import HostTracker

Action = Callable[[cfg.ConfigOpts], int]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def parser(name: str, help_text: str,
               action: Action) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help_text)
        add_sysfs_root_argument(p)
        output.add_format_argument(p)
        p.set_defaults(action_fn=action)
        return p

    p = parser("explain", "Say for every device whether it serves a "
                          "flavor, and if not, why.", run_explain)
    p.add_argument("flavor", metavar="FLAVOR")
    p.add_argument("--count", type=int, default=1,
                   help="How many devices the request wants (default 1).")
    p.add_argument("--numa-cells", metavar="N[,N...]", default=None,
                   help="The instance's NUMA cells, for the flavor's "
                        "numa_policy (default: no NUMA constraint).")
    parser("claims", "List who holds which device.", run_claims)
    p = parser("claim", "Claim one device per flavor for an instance, all "
                        "or nothing.", run_claim)
    p.add_argument("instance", metavar="INSTANCE_UUID")
    p.add_argument("flavors", metavar="FLAVOR[,FLAVOR...]",
                   help="One flavor per port; port indexes follow the "
                        "order.")
    p = parser("free", "Delete an instance's networks, then free every "
                       "device it holds.", run_free)
    p.add_argument("instance", metavar="INSTANCE_UUID")


def _tracker(conf: cfg.ConfigOpts, readonly: bool = False) -> HostTracker:
    # explain and claims only show: their ledger is read-only, so they
    # create and change nothing, and a missing ledger is no claims.
    tracker, _ = HostTracker.from_conf(conf, sysfs_root(conf),
                                       readonly_ledger=readonly)
    return tracker


def _print_allocations(conf: cfg.ConfigOpts,
                       allocs: list[Allocation]) -> None:
    if conf.command.format == "json":
        output.print_json({"allocations": [a.as_dict() for a in allocs]})
        return
    output.print_table(
        ("INSTANCE", "PORT", "ADDRESS", "NETDEV", "FLAVOR", "STATE"),
        [(a.instance_uuid, a.port_index, a.address, a.netdev,
          a.flavor or "(inline)",
          a.state + (" (vanished)" if a.vanished else ""))
         for a in allocs])


def run_explain(conf: cfg.ConfigOpts) -> int:
    tracker = _tracker(conf, readonly=True)
    try:
        result = tracker.explain(conf.command.flavor,
                                 count=conf.command.count,
                                 numa_cells=_cells(conf.command.numa_cells))
    finally:
        tracker.close()
    if conf.command.format == "json":
        output.print_json(result.as_dict())
        return 0
    output.print_table(("ADDRESS", "MATCH", "REASON"),
                       [(d.address, d.match, d.reason)
                        for d in result.devices])
    verdict = "can" if result.satisfiable else "CANNOT"
    print(f"This host {verdict} serve {result.count} x flavor "
          f"{result.flavor}.")
    return 0


def _cells(text: str | None) -> set[int] | None:
    if text is None:
        return None
    try:
        return {int(c) for c in text.split(",")}
    except ValueError:
        raise exception.InvalidPortRequest(
            port="-", reason=f"--numa-cells {text!r} is not a list of node "
                             f"numbers such as 0,1") from None


def run_claims(conf: cfg.ConfigOpts) -> int:
    tracker = _tracker(conf, readonly=True)
    try:
        _print_allocations(conf, tracker.allocations())
    finally:
        tracker.close()
    return 0


def _agent(conf: cfg.ConfigOpts) -> HostAgent:
    """The agent on this host's ledger and network driver, after a scan.

    It does not reconcile: the agent of nova-compute owns the networks of
    the instances this command does not name."""
    _quiet_libvirt(conf)
    conf.set_override("sysfs_root", sysfs_root(conf),
                      group="pci_passthrough")
    agent = HostAgent(conf)
    try:
        agent.refresh()
    except BaseException:
        agent.close()
        raise
    return agent


def _quiet_libvirt(conf: cfg.ConfigOpts) -> None:
    # The command is the process: it, not the library, decides that
    # libvirt's own stderr lines are noise beside its one-line errors.
    if conf.pci_passthrough.network_driver == "libvirt_macvtap":
        import libvirt

        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def run_claim(conf: cfg.ConfigOpts) -> int:
    instance = canonical_uuid(conf.command.instance)
    names = [n.strip() for n in conf.command.flavors.split(",")]
    ports = [PortRequest(index=i, flavor=name)
             for i, name in enumerate(names)]
    with _agent(conf) as agent:
        _print_allocations(conf, agent.claim(instance, ports))
    return 0


def run_free(conf: cfg.ConfigOpts) -> int:
    instance = canonical_uuid(conf.command.instance)
    with _agent(conf) as agent:
        try:
            freed = agent.release(instance)
        except exception.NetworkDriverError as exc:
            group = conf.pci_passthrough
            raise exception.ReleaseRefused(
                instance=instance, reason=str(exc).rstrip("."),
                remedy=f"Make the network driver reachable (driver "
                       f"{group.network_driver}, [pci_passthrough] "
                       f"libvirt_uri {group.libvirt_uri}: is libvirtd "
                       f"running?) and run 'pci-passthrough free "
                       f"{instance}' again.") from exc
    _print_allocations(conf, freed)
    return 0
