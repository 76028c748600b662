"""A fleet, simulated, scheduled through one real Placement.

H simulated hosts (each its own sysfs tree with a mix of NICs, PFs, VF
counts, physnets and special groups, its own ledger and tracker) report
to one real Placement (openstack-placement under gunicorn; SQLite with
one worker by default, or ``--db postgresql``: a throwaway PostgreSQL
cluster with several workers).  S scheduler threads place I instances
(1-4 ports, mixed flavors including a special group): candidates,
choice, allocation written with consumer generations, and the host
claims exactly the VFs of the allocated providers.  Then 10% are
live-migrated (destination claim, allocation moved, source freed) and
20% deleted.  At the end it checks, and exits non-zero unless all hold:

- no overcommit: usage <= capacity on every provider, no VF held twice;
- Placement's usages equal the ledgers' holdings, provider by provider;
- no VF with a special attribute held for a flavor not naming it;
- every 409 retried and resolved.

and prints the figures: sync time per host (cold, warm), candidates
latency p50/p99, placements per second end to end, conflicts, and, for
comparison, Nova's filter path (its PciPassthroughFilter evaluates every
host's pools per request: our matcher's per-host cost x hosts).

    python tools/bench/fleet.py [--hosts 100] [--instances 5000]
        [--schedulers 4] [--db sqlite|postgresql] [--workers N]
        [--seed 1]

Needs the placement-server extra (tox -e bench installs it).  The host
claim is HostAgent.claim(allocation=)'s: each port, under its flavor,
takes a VF of the provider Placement allocated it on.
"""

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import FlavorSet, parse_flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures.sysfs_tree import HostLayout, PfLayout
from pci_passthrough.fixtures.sysfs_tree import build_tree as build_sysfs
from pci_passthrough.ledger import Ledger
from pci_passthrough.model import device_attrs
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.placement import requests
from pci_passthrough.placement.allocation import port_providers
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.conf import register_placement_opts
from pci_passthrough.placement.sync import Reporter
from pci_passthrough.placement.tree import ProviderTree, build_tree
from pci_passthrough.tracker import HostTracker, matching

# The test Placement server lives with the functional tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]
                       / "tests" / "functional" / "placement_service"))
import placement_server

SPECIAL = ("group",)
FLAVORS = (
    '{"name": "net1", "physical_network": "physnet1"}',
    '{"name": "net2", "physical_network": "physnet2"}',
    '{"name": "mlx", "vendor_id": "15b3", "physical_network": "physnet1"}',
    '{"name": "grp1", "physical_network": "physnet2", "group": "grp1"}',
    '{"name": "trusted", "physical_network": "physnet1", '
    '"trusted": "true"}',
)
FLAVOR_WEIGHTS = {"net1": 40, "net2": 25, "mlx": 15, "grp1": 15,
                  "trusted": 5}
PORT_WEIGHTS = {1: 50, 2: 30, 3: 15, 4: 5}
# Tag names every host's configuration defines, so that the fleet's
# flavors parse on a host without grouped or trusted devices too: a
# spec that matches no device.
_TAG_SENTINEL = ('{"vendor_id": "ffff", "physical_network": "none", '
                 '"group": "none", "trusted": "false"}')
NICS = ("intel-x710", "intel-e810", "intel-82599", "mellanox-cx5",
        "mellanox-cx6dx")
MAX_TRIES = 6
CANDIDATE_LIMIT = 20


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


# -- the fleet --------------------------------------------------------------

@dataclasses.dataclass
class Host:
    name: str
    tracker: HostTracker
    tree: ProviderTree
    flavors: FlavorSet
    #: VF address -> matching attributes (for the special-attribute check).
    attrs: dict[str, dict[str, str]]
    uuids: dict[str, str] = dataclasses.field(default_factory=dict)


def host_config(rng: random.Random) -> tuple[HostLayout, list[str]]:
    """A host of 2-4 PFs of 8-32 VFs; each PF on physnet1 or physnet2,
    some in the special group grp1, some trusted; all VFs of the class
    CUSTOM_NET_VF, as an operator tags network VFs."""
    pfs, specs = [], []
    for bus in sorted(rng.sample(range(0x10, 0xf0), rng.randint(2, 4))):
        address = f"0000:{bus:02x}:00.0"
        pfs.append(PfLayout(rng.choice(NICS), address,
                            numvfs=rng.randint(8, 32),
                            numa_node=rng.choice((0, 1)),
                            netdev=f"p{bus:02x}"))
        spec: dict[str, str] = {
            "address": address, "resource_class": "net-vf",
            "physical_network": rng.choice(("physnet1", "physnet2"))}
        if spec["physical_network"] == "physnet2" and rng.random() < 0.4:
            spec["group"] = "grp1"
        if rng.random() < 0.2:
            spec["trusted"] = "true"
        specs.append(json.dumps(spec))
    return HostLayout(tuple(pfs)), [*specs, _TAG_SENTINEL]


def make_host(workdir: pathlib.Path, name: str,
              rng: random.Random) -> Host:
    layout, spec_values = host_config(rng)
    build_sysfs(workdir / "sys", layout)
    specs = devspec.parse_device_specs(spec_values)
    flavors = parse_flavors(FLAVORS, known_tags=specs.tag_names,
                            special_attributes=SPECIAL)
    scan = sysfs_scan.scan(str(workdir / "sys"))
    tracker = HostTracker(flavors, Ledger(workdir / "claims.sqlite3"))
    tracker.update_devices(scan, specs)
    tree = build_tree(name, scan.devices, specs, SPECIAL)
    attrs = {d.address: device_attrs.device_attrs(d, specs.match(d) or {})
             for d in scan.devices if d.is_vf}
    return Host(name, tracker, tree, flavors, attrs)


# -- Placement ----------------------------------------------------------------

def client_for(conf_file: pathlib.Path) -> PlacementClient:
    conf = cfg.ConfigOpts()
    register_placement_opts(conf)
    conf(["--config-file", str(conf_file)], default_config_files=[],
         default_config_dirs=[])
    return PlacementClient.from_conf(conf)


def start_postgresql(workdir: pathlib.Path) -> tuple[str, Callable[[], None]]:
    """A throwaway cluster (Debian's postgresql package) owned by the
    postgres user, on a loopback port; returns its URL and a stopper."""
    bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise SystemExit("--db postgresql needs Debian's postgresql "
                         "package (apt-get install postgresql)")
    bindir = bins[-1]
    data = workdir / "pgdata"
    data.mkdir(parents=True)
    shutil.chown(data, "postgres")
    shutil.chown(workdir, "postgres")

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    as_postgres(str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                "-U", "postgres")
    port = placement_server.free_port()
    as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                str(workdir / "pg.log"), "-o",
                f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 "
                f"-c max_connections=200 -c fsync=off", "start")
    as_postgres(str(bindir / "createdb"), "-h", "127.0.0.1", "-p",
                str(port), "-U", "postgres", "placement")

    def stop() -> None:
        as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                    "stop")

    return (f"postgresql+psycopg2://postgres@127.0.0.1:{port}/placement",
            stop)


# -- scheduling ---------------------------------------------------------------

@dataclasses.dataclass
class Stats:
    candidates_s: list[float] = dataclasses.field(default_factory=list)
    placed: int = 0
    #: Instances no host could take (the fleet is full for them).
    refused: int = 0
    no_valid_host: int = 0
    conflicts: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter)
    unresolved: int = 0
    host_refusals: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


@dataclasses.dataclass
class Instance:
    uuid: str
    flavors: list[str]
    host: str | None = None
    #: per port: (flavor, provider uuid)
    ports: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class Fleet:
    def __init__(self, hosts: list[Host], stats: Stats,
                 groups: dict[str, list[requests.RequestGroup]]) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.stats = stats
        self.groups = groups
        self.provider_host: dict[str, tuple[Host, str]] = {}
        for h in hosts:
            for name, rp in h.uuids.items():
                self.provider_host[rp] = (h, name)

    def queries(self, flavors: list[str]) -> tuple[list[str], list[str]]:
        """The queries for an instance, and the flavor of each group
        suffix _pciN in them."""
        counts = collections.Counter(flavors)
        order = sorted(counts)
        parts = [(self.groups[f], counts[f]) for f in order]
        suffix_flavor = [f for f in order for _ in range(counts[f])]
        return requests.group_queries(parts), suffix_flavor

    def candidates(self, client: PlacementClient, query: str
                   ) -> list[dict[str, Any]]:
        start = time.perf_counter()
        body = client.get(f"/allocation_candidates?{query}"
                          f"&limit={CANDIDATE_LIMIT}").body
        elapsed = time.perf_counter() - start
        with self.stats.lock:
            self.stats.candidates_s.append(elapsed)
        return list(body["allocation_requests"])

    def host_claim(self, host: Host, instance: str,
                   ports: list[tuple[str, str]]) -> bool:
        """Claim on ``host`` each port's flavor from a VF of the provider
        Placement allocated it on (HostAgent.claim(allocation=)'s path:
        port_providers, then the tracker confined to those VFs); all or
        nothing.  False when the host refuses the allocation."""
        try:
            providers = port_providers(host.tree, instance, host.uuids,
                                       [rp for _, rp in ports])
            host.tracker.claim(
                instance, [PortRequest(index=n, flavor=flavor)
                           for n, (flavor, _) in enumerate(ports)],
                within=[p.vfs for p in providers])
        except (exception.AllocationMismatch, exception.ClaimFailed):
            return False
        return True

    def place(self, client: PlacementClient, inst: Instance,
              rng: random.Random, exclude: str | None = None) -> bool:
        """Candidates, choice, allocation, host claim; True when placed.
        On a migration (``exclude`` = the source host) the allocation
        is moved and the caller frees the source."""
        queries, suffix_flavor = self.queries(inst.flavors)
        # Port n is group _pciN: the same flavors, in the groups' order.
        inst.flavors = suffix_flavor
        for _ in range(MAX_TRIES):
            options = []
            for query in queries:
                options += self.candidates(client, query)
            options = [o for o in options
                       if self._host_of(o) is not None
                       and self._host_of(o) != exclude]
            if not options:
                with self.stats.lock:
                    self.stats.no_valid_host += 1
                return False
            choice = rng.choice(options)
            host = self.hosts[self._host_of(choice) or ""]
            ports = []
            for n, flavor in enumerate(suffix_flavor):
                (rp,) = choice["mappings"][f"_pci{n}"]
                ports.append((flavor, rp))
            current = client.get(f"/allocations/{inst.uuid}").body
            resp = client.put(f"/allocations/{inst.uuid}", {
                "allocations": {rp: {"resources": a["resources"]}
                                for rp, a in choice["allocations"].items()},
                "project_id": "fleet", "user_id": "fleet",
                "consumer_generation": current.get("consumer_generation"),
                "consumer_type": "INSTANCE"}, expect=(204, 409))
            if resp.status == 409:
                with self.stats.lock:
                    self.stats.conflicts[conflict_kind(resp.detail())] += 1
                continue
            if not self.host_claim(host, inst.uuid, ports):
                # Never expected: Placement's capacity is the host's.
                with self.stats.lock:
                    self.stats.host_refusals += 1
                self._restore(client, inst)
                return False
            inst.host, inst.ports = host.name, ports
            return True
        with self.stats.lock:
            self.stats.unresolved += 1
        return False

    def _restore(self, client: PlacementClient, inst: Instance) -> None:
        """Put back the allocation of where the instance still is."""
        current = client.get(f"/allocations/{inst.uuid}").body
        allocations: dict[str, dict[str, dict[str, int]]] = {}
        if inst.host is not None:
            for _, rp in inst.ports:
                res = allocations.setdefault(rp, {"resources": {}})
                res["resources"]["CUSTOM_NET_VF"] = \
                    res["resources"].get("CUSTOM_NET_VF", 0) + 1
        client.put(f"/allocations/{inst.uuid}", {
            "allocations": allocations, "project_id": "fleet",
            "user_id": "fleet",
            "consumer_generation": current.get("consumer_generation"),
            "consumer_type": "INSTANCE"}, expect=(204,))

    def _host_of(self, option: dict[str, Any]) -> str | None:
        hosts = {self.provider_host[rp][0].name
                 for rp in option["allocations"] if rp in self.provider_host}
        return hosts.pop() if len(hosts) == 1 else None

    def migrate(self, client: PlacementClient, inst: Instance,
                rng: random.Random) -> bool:
        source = inst.host
        old_ports = inst.ports
        if not self.place(client, inst, rng, exclude=source):
            return False
        assert source is not None and inst.host != source, old_ports
        self.hosts[source].tracker.free(inst.uuid)
        return True

    def delete(self, client: PlacementClient, inst: Instance) -> None:
        assert inst.host is not None
        self.hosts[inst.host].tracker.free(inst.uuid)
        client.delete(f"/allocations/{inst.uuid}", expect=(204,))
        inst.host = None


def conflict_kind(detail: str) -> str:
    if "consumer generation" in detail:
        return "consumer generation"
    if "exceed" in detail or "capacity" in detail:
        return "capacity taken meanwhile"
    if "generation" in detail or "concurrent" in detail:
        return "provider generation"
    return detail[:60]


def run_threads(n: int, work: Callable[[int], None]) -> float:
    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


# -- checks -------------------------------------------------------------------

def check(fleet: Fleet, client: PlacementClient,
          instances: list[Instance]) -> list[str]:
    failures = []
    held: dict[str, int] = collections.Counter()
    placed = {i.uuid: i for i in instances if i.host is not None}
    for host in fleet.hosts.values():
        allocs = host.tracker.allocations()
        addresses = [a.address for a in allocs]
        if len(addresses) != len(set(addresses)):
            failures.append(f"{host.name}: a VF held twice")
        where = host.tree.provider_of()
        for a in allocs:
            held[host.uuids[where[a.address].name]] += 1
            inst = placed.get(a.instance_uuid)
            if inst is None or inst.host != host.name:
                failures.append(f"{host.name}: {a.instance_uuid} holds "
                                f"{a.address} but is not placed here")
                continue
            flavor = inst.flavors[a.port_index]
            if matching.first_mismatch(
                    host.flavors.get(flavor), host.attrs[a.address],
                    SPECIAL) is not None:
                failures.append(f"{host.name}: {a.address} given to "
                                f"flavor {flavor}, which it does not "
                                f"serve")
    for host in fleet.hosts.values():
        for provider in host.tree.providers:
            rp = host.uuids[provider.name]
            usages = client.get(f"/resource_providers/{rp}/usages"
                                ).body["usages"]
            used = usages.get(provider.resource_class, 0)
            if used > provider.total - provider.reserved:
                failures.append(f"{provider.name}: usage {used} over "
                                f"capacity {provider.total}")
            if used != held.get(rp, 0):
                failures.append(f"{provider.name}: Placement says {used} "
                                f"used, the ledger {held.get(rp, 0)}")
    if fleet.stats.unresolved:
        failures.append(f"{fleet.stats.unresolved} placement(s) gave up "
                        f"after {MAX_TRIES} conflicts")
    if fleet.stats.host_refusals:
        failures.append(f"{fleet.stats.host_refusals} host claim(s) "
                        f"refused what Placement allocated")
    return failures


# -- main ---------------------------------------------------------------------

def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--schedulers", type=int, default=4)
    parser.add_argument("--db", choices=("sqlite", "postgresql"),
                        default="sqlite")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers (default 1 on SQLite, "
                             "4 on PostgreSQL)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=None,
                        help="Where hosts and Placement keep their files "
                             "(default: a folder in /dev/shm when it "
                             "exists: a sysfs tree is many small files).")
    parser.add_argument("--nova-sample", type=int, default=200,
                        help="Requests timed for the Nova filter stand-in.")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Each host's ledger keeps an SQLite file (and its WAL) open.
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (max(soft, min(hard, 8 * args.hosts + 1024)), hard))
    base = args.workdir or ("/dev/shm" if os.path.isdir("/dev/shm")
                            else None)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pcipt-fleet-",
                                            dir=base))
    os.chmod(workdir, 0o755)
    stoppers: list[Callable[[], None]] = []
    try:
        return _run(args, workdir, stoppers)
    finally:
        for stop in reversed(stoppers):
            stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: pathlib.Path,
         stoppers: list[Callable[[], None]]) -> int:
    rng = random.Random(args.seed)
    connection = None
    workers = args.workers or (1 if args.db == "sqlite" else 4)
    if args.db == "postgresql":
        connection, stop_pg = start_postgresql(workdir / "pg")
        stoppers.append(stop_pg)
    server = placement_server.start(workdir / "placement",
                                    connection=connection, workers=workers)
    stoppers.append(server.stop)
    conf_file = server.write_client_config(workdir / "placement.conf")
    print(f"fleet: {args.hosts} hosts, {args.instances} instances, "
          f"{args.schedulers} schedulers, Placement on {args.db} with "
          f"{workers} worker(s)", flush=True)

    t0 = time.perf_counter()
    hosts = [make_host(workdir / f"h{i}", f"fleet-{i:04d}",
                       random.Random(rng.random()))
             for i in range(args.hosts)]
    vfs = sum(p.total for h in hosts for p in h.tree.providers)
    print(f"built {len(hosts)} hosts, {vfs} VFs, "
          f"{sum(len(h.tree.providers) for h in hosts)} providers in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

    client = client_for(conf_file)
    reporter = Reporter(client)
    traits = requests.flavor_traits(hosts[0].flavors)
    cold, warm = [], []
    for host in hosts:
        start = time.perf_counter()
        report = reporter.sync(host.tree, [], traits)
        cold.append(time.perf_counter() - start)
        body = client.get(f"/resource_providers?in_tree="
                          f"{report.root_uuid}").body
        host.uuids = {p["name"]: p["uuid"]
                      for p in body["resource_providers"]}
    for host in hosts:
        start = time.perf_counter()
        report = reporter.sync(host.tree, [], traits)
        warm.append(time.perf_counter() - start)
        assert report.writes == 0, report

    catalog = {c for h in hosts for c in h.tree.catalog()}
    groups = {name: requests.flavor_groups(
        hosts[0].flavors.get(name), SPECIAL, catalog)
        for name in FLAVOR_WEIGHTS}
    stats = Stats()
    fleet = Fleet(hosts, stats, groups)
    flavor_names = list(FLAVOR_WEIGHTS)
    instances = []
    for _ in range(args.instances):
        n = rng.choices(list(PORT_WEIGHTS), list(PORT_WEIGHTS.values()))[0]
        instances.append(Instance(str(uuid.UUID(int=rng.getrandbits(128))),
                                  rng.choices(flavor_names, list(
                                      FLAVOR_WEIGHTS.values()), k=n)))

    def scheduler(index: int) -> None:
        mine = instances[index::args.schedulers]
        thread_client = client_for(conf_file)
        thread_rng = random.Random(args.seed * 1000 + index)
        for inst in mine:
            if fleet.place(thread_client, inst, thread_rng):
                with stats.lock:
                    stats.placed += 1
            elif inst.host is None:
                with stats.lock:
                    stats.refused += 1

    place_s = run_threads(args.schedulers, scheduler)
    placed = [i for i in instances if i.host is not None]
    to_migrate = rng.sample(placed, len(placed) // 10)
    migrated = 0
    migrate_lock = threading.Lock()

    def migrator(index: int) -> None:
        nonlocal migrated
        thread_client = client_for(conf_file)
        thread_rng = random.Random(args.seed * 2000 + index)
        for inst in to_migrate[index::args.schedulers]:
            if fleet.migrate(thread_client, inst, thread_rng):
                with migrate_lock:
                    migrated += 1

    migrate_s = run_threads(args.schedulers, migrator)
    placed = [i for i in instances if i.host is not None]
    to_delete = rng.sample(placed, len(placed) // 5)

    def deleter(index: int) -> None:
        thread_client = client_for(conf_file)
        for inst in to_delete[index::args.schedulers]:
            fleet.delete(thread_client, inst)

    delete_s = run_threads(args.schedulers, deleter)

    # After everything, a sync of every host changes nothing: the
    # ledgers and Placement agree.
    resync_writes = 0
    for host in hosts:
        resync_writes += reporter.sync(host.tree, _ledger_records(host),
                                       traits).writes

    # Nova's filter path: every host's pools evaluated per request.
    sample = rng.sample(instances, min(args.nova_sample, len(instances)))
    start = time.perf_counter()
    for inst in sample:
        for host in hosts:
            for flavor, count in collections.Counter(inst.flavors).items():
                host.tracker.explain(flavor, count=count)
    nova_per_request = (time.perf_counter() - start) / len(sample)

    failures = check(fleet, client, instances)
    if resync_writes:
        failures.append(f"a final sync wrote {resync_writes} time(s): "
                        f"Placement and the ledgers disagreed")
    conflicts = sum(stats.conflicts.values())
    print(f"sync per host: cold p50 {ms(pct(cold, .5))} p99 "
          f"{ms(pct(cold, .99))}; warm p50 {ms(pct(warm, .5))} p99 "
          f"{ms(pct(warm, .99))} (0 writes)")
    print(f"candidates at {args.hosts} hosts: p50 "
          f"{ms(pct(stats.candidates_s, .5))} p99 "
          f"{ms(pct(stats.candidates_s, .99))} over "
          f"{len(stats.candidates_s)} queries")
    print(f"placed {stats.placed}/{args.instances} in {place_s:.1f} s: "
          f"{stats.placed / place_s:.1f} placements/s end to end; "
          f"no valid host for {stats.refused}")
    print(f"live-migrated {migrated}/{len(to_migrate)} in "
          f"{migrate_s:.1f} s; deleted {len(to_delete)} in "
          f"{delete_s:.1f} s")
    print(f"409 conflicts seen {conflicts} "
          f"({dict(stats.conflicts) or 'none'}), all retried; "
          f"unresolved {stats.unresolved}")
    print(f"Nova-style filter path (our matcher per host x "
          f"{args.hosts} hosts): {ms(nova_per_request)} per request, vs "
          f"candidates p50 {ms(pct(stats.candidates_s, .5))}")
    held = sum(len(h.tracker.allocations()) for h in hosts)
    print(f"checks: VFs held {held}; usage <= capacity everywhere; "
          f"Placement usages == ledgers; special attributes respected; "
          f"every 409 resolved: "
          f"{'PASS' if not failures else 'FAIL'}")
    for failure in failures[:20]:
        print(f"  FAIL {failure}")
    for host in hosts:
        host.tracker.close()
    return 1 if failures else 0


def _ledger_records(host: Host) -> list[Any]:
    from pci_passthrough.ledger import LedgerRecord

    return [LedgerRecord(a.instance_uuid, a.port_index, a.address,
                         a.state, a.flavor, "{}", a.netdev)
            for a in host.tracker.allocations()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
