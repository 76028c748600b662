"""The demo's Placement step: both demo hosts reported to an in-process
Placement (placement.direct over an SQLite file in the demo's folder),
then asked for candidates for the special-group flavor and ordinary ones.

It shows the rule that matters for scheduling: the grouped Mellanox VFs
are offered to ``grp1``, the flavor naming the group, and to no other
flavor, although ``mlx`` asks for their vendor.  Then a trait removed
by hand is found by doctor's Placement audit and repaired by one sync.

Call ``run_placement_demo(workdir, out)`` from the demo command; it needs
the placement-server extra and says so (returning None) without it.
placement.direct configures a process-wide database engine once, so the
step runs in a child process of its own: it can be called any number of
times, each with its own database.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys
import urllib.parse
from typing import Any, TextIO

from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.doctor.placement_audit import audit, observe
from pci_passthrough.doctor.placement_repair import repair
from pci_passthrough.fixtures.sysfs_tree import build_tree as build_sysfs
from pci_passthrough.placement import requests
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.sync import Reporter
from pci_passthrough.placement.tree import ProviderTree, build_tree

HOSTS = (("demo-host-a", demo_hosts.DEMO_HOST_A),
         ("demo-host-b", demo_hosts.DEMO_HOST_B))
FLAVORS = ("grp1", "mlx", "net1")


def _placement_conf(db: pathlib.Path) -> Any:
    from oslo_config import cfg
    from placement import conf as placement_conf

    path = db.with_suffix(".conf")
    path.write_text(f"[placement_database]\nconnection = sqlite:///{db}\n"
                    f"sync_on_startup = True\n")
    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf(["--config-file", str(path)], project="placement",
         default_config_files=[], default_config_dirs=[])
    return conf


_RESULT = "PCIPT-PLACEMENT-DEMO-RESULT "


def run_placement_demo(workdir: pathlib.Path, out: TextIO
                       ) -> dict[str, Any] | None:
    """Report the demo hosts, ask for each demo flavor, print and return
    ``{"offered": {flavor: [provider names]}, "group_only_to_grp1":
    bool}``; None when openstack-placement is not installed.

    :raises HostSetupError: the step failed (its last output lines say
        why).
    """
    if importlib.util.find_spec("placement") is None:
        out.write("Placement step skipped: openstack-placement is not "
                  "installed (pip install "
                  "'pci_passthrough[placement-server]').\n")
        return None
    from pci_passthrough import exception

    proc = subprocess.run(
        [sys.executable, "-m", "pci_passthrough.demo.placement_step",
         str(workdir)], capture_output=True, text=True, check=False)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(_RESULT):
            result = json.loads(line[len(_RESULT):])
        else:
            out.write(line + "\n")
    if proc.returncode or result is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        raise exception.PlacementUnavailable(
            url="placement.direct (in process)",
            reason=f"the demo's Placement step failed: {tail}")
    return dict(result)


def _run_here(workdir: pathlib.Path, out: TextIO) -> dict[str, Any]:
    from placement import db_api, direct

    workdir.mkdir(parents=True, exist_ok=True)
    specs = devspec.parse_device_specs(demo_hosts.DEMO_DEVICE_SPECS)
    flavors = parse_flavors(demo_hosts.DEMO_FLAVORS,
                            known_tags=specs.tag_names,
                            special_attributes=["group"])
    trees: list[ProviderTree] = []
    for name, layout in HOSTS:
        root = workdir / name / "sys"
        if not root.exists():
            build_sysfs(root, layout)
        scan = sysfs_scan.scan(str(root))
        trees.append(build_tree(name, scan.devices, specs,
                                flavors.special_attributes))
    conf = _placement_conf(workdir / "placement.sqlite3")
    db_api.configure(conf)
    offered: dict[str, list[str]] = {}
    with direct.PlacementDirect(conf) as adapter:
        client = PlacementClient(adapter)
        reporter = Reporter(client)
        traits = requests.flavor_traits(flavors)
        names_by_uuid = {}
        for tree in trees:
            report = reporter.sync(tree, [], traits)
            out.write(f"Reported {tree.nodename}: "
                      f"{len(tree.providers)} PF provider(s), "
                      f"{report.writes} write(s) to Placement.\n")
            body = client.get(f"/resource_providers?in_tree="
                              f"{report.root_uuid}").body
            names_by_uuid.update({p["uuid"]: p["name"]
                                  for p in body["resource_providers"]})
        catalog = {c for tree in trees for c in tree.catalog()}
        for flavor in FLAVORS:
            got: set[str] = set()
            # Not pruned: Placement itself refuses the grouped VFs.
            queries = requests.request_queries(flavors, flavor, 1, catalog,
                                               prune=False)
            for query in queries:
                body = client.get(f"/allocation_candidates?{query}").body
                for req in body["allocation_requests"]:
                    got |= {names_by_uuid[rp] for rp in req["allocations"]}
            offered[flavor] = sorted(got)
            out.write(f"Placement offers flavor {flavor} "
                      f"({len(queries)} queries): "
                      f"{', '.join(offered[flavor]) or 'nothing'}\n")
        fixed = _doctor(client, trees[0], traits, out)
    grouped = {p.name for tree in trees for p in tree.providers
               if any(t.startswith("CUSTOM_PCIPT_HAS_GROUP")
                      for t in p.traits)}
    only = set(offered["grp1"]) == grouped and not any(
        grouped & set(offered[f]) for f in FLAVORS if f != "grp1")
    out.write(f"Grouped VFs offered to grp1 only: "
              f"{'yes' if only else 'NO'}\n")
    return {"offered": offered, "group_only_to_grp1": only,
            "doctor_fixed": fixed}


def _doctor(client: PlacementClient, tree: ProviderTree,
            traits: frozenset[str], out: TextIO) -> list[str]:
    """A hand removes a trait in Placement; doctor finds it and one sync
    repairs it.  The subjects repaired."""
    provider = tree.providers[0]
    uuid = client.get(f"/resource_providers?name="
                      f"{urllib.parse.quote(provider.name)}").body[
        "resource_providers"][0]["uuid"]
    path = f"/resource_providers/{uuid}/traits"
    body = client.get(path).body
    dropped = sorted(t for t in provider.traits
                     if t.startswith("CUSTOM_PHYSNET_"))[:1]
    client.put(path, {
        "resource_provider_generation": body["resource_provider_generation"],
        "traits": sorted(set(body["traits"]) - set(dropped))})
    out.write(f"By hand: trait {', '.join(dropped)} removed from "
              f"{provider.name}.\n")
    findings = audit(tree, [], observe(
        client, tree.nodename, names=[p.name for p in tree.providers]))
    for found in findings:
        out.write(f"Doctor finds {found.kind.value} {found.subject}: "
                  f"{found.problem}\n")
    done = repair(client, tree, [], findings, traits=traits)
    fixed = [f.subject for f in done.findings if f.fixed]
    out.write(f"Doctor --fix (one placement sync): {len(fixed)} fixed, "
              f"{len(done.findings) - len(fixed)} left.\n")
    return fixed


if __name__ == "__main__":
    found = _run_here(pathlib.Path(sys.argv[1]), sys.stdout)
    print(_RESULT + json.dumps(found))
