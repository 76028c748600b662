"""Reporting to a real Placement: the tree, compare-before-write, the
root left to nova-compute, healing from the ledger, vanished PFs, 409s
retried, failures reported in one line."""

import json
import pathlib
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
from conf_files import write_demo_host_conf, write_placement_conf

from pci_passthrough import exception
from pci_passthrough.config import devspec
from pci_passthrough.config.flavors import parse_flavors
from pci_passthrough.demo import hosts as demo_hosts
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.simulated_host import host_conf
from pci_passthrough.ledger import Ledger
from pci_passthrough.model import placement_names as names
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.placement import requests
from pci_passthrough.placement.client import PlacementClient
from pci_passthrough.placement.sync import INCOMPLETE_CONSUMER_ID, Reporter
from pci_passthrough.placement.tree import build_tree
from pci_passthrough.tracker import HostTracker

pytestmark = [pytest.mark.functional, pytest.mark.placement]

PROJECT = "7e1f0000000000000000000000000001"
USER = "7e1f0000000000000000000000000002"


class Host:
    """A simulated host: sysfs tree, configuration, ledger."""

    def __init__(self, workdir: pathlib.Path, nodename: str,
                 layout: st.HostLayout = demo_hosts.DEMO_HOST_A) -> None:
        self.workdir = workdir
        self.nodename = nodename
        st.build_tree(workdir / "sys", layout)
        self.conf = host_conf(workdir,
                              device_specs=demo_hosts.DEMO_DEVICE_SPECS,
                              flavors=demo_hosts.DEMO_FLAVORS,
                              network_driver="noop")
        self.specs = devspec.parse_device_specs(
            demo_hosts.DEMO_DEVICE_SPECS)
        self.flavors = parse_flavors(demo_hosts.DEMO_FLAVORS,
                                     known_tags=self.specs.tag_names,
                                     special_attributes=["group"])

    def tree(self):
        scan = sysfs_scan.scan(str(self.workdir / "sys"))
        return build_tree(self.nodename, scan.devices, self.specs,
                          self.flavors.special_attributes)

    def records(self):
        path = self.workdir / "claims.sqlite3"
        if not path.exists():
            return []
        with Ledger(path) as ledger:
            return ledger.records()

    def sync(self, reporter: Reporter):
        return reporter.sync(self.tree(), self.records(),
                             requests.flavor_traits(self.flavors))

    def claim(self, instance: str, flavors: list[str]):
        tracker, _ = HostTracker.from_conf(self.conf)
        try:
            return tracker.claim(instance, [
                PortRequest(index=i, flavor=f)
                for i, f in enumerate(flavors)])
        finally:
            tracker.close()

    def free(self, instance: str) -> None:
        tracker, _ = HostTracker.from_conf(self.conf)
        try:
            tracker.free(instance)
        finally:
            tracker.close()


def providers(client: PlacementClient, root: str) -> dict[str, dict]:
    body = client.get(f"/resource_providers?in_tree={root}").body
    return {p["name"]: p for p in body["resource_providers"]}


def generations(client: PlacementClient, root: str) -> dict[str, int]:
    return {n: p["generation"] for n, p in providers(client, root).items()}


def test_sync_reports_the_tree_and_a_second_sync_changes_nothing(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    reporter = Reporter(client)
    first = host.sync(reporter)
    assert sorted(first.created_providers) == [
        f"{host.nodename}_0000:3B:00.0_pcipt",
        f"{host.nodename}_0000:5E:00.0_pcipt"]
    found = providers(client, first.root_uuid)
    tree = host.tree()
    for p in tree.providers:
        rp = found[p.name]
        assert rp["parent_provider_uuid"] == first.root_uuid
        inv = client.get(f"/resource_providers/{rp['uuid']}/inventories"
                         ).body["inventories"]
        assert inv[p.resource_class]["total"] == p.total
        assert inv[p.resource_class]["max_unit"] == p.total
        traits = client.get(f"/resource_providers/{rp['uuid']}/traits"
                            ).body["traits"]
        assert set(traits) == p.traits
    before = generations(client, first.root_uuid)
    second = host.sync(reporter)
    assert second.writes == 0 and not second.changed
    assert generations(client, first.root_uuid) == before


def test_root_provider_inventory_and_traits_are_left_alone(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    # nova-compute created the root with its own inventory and traits.
    root = client.post("/resource_providers",
                       {"name": host.nodename}).body["uuid"]
    gen = client.put(f"/resource_providers/{root}/inventories", {
        "resource_provider_generation": 0,
        "inventories": {"VCPU": {"total": 8}}}).body[
        "resource_provider_generation"]
    client.put(f"/resource_providers/{root}/traits", {
        "resource_provider_generation": gen,
        "traits": ["HW_CPU_X86_AVX2"]})
    before = client.get(f"/resource_providers/{root}").body
    report = host.sync(Reporter(client))
    assert report.root_uuid == root
    after = client.get(f"/resource_providers/{root}").body
    assert after["generation"] == before["generation"]
    assert client.get(f"/resource_providers/{root}/traits").body[
        "traits"] == ["HW_CPU_X86_AVX2"]
    assert set(client.get(f"/resource_providers/{root}/inventories").body[
        "inventories"]) == {"VCPU"}


def test_allocations_are_healed_from_the_ledger(tmp_path, client,
                                                nodename) -> None:
    host = Host(tmp_path, nodename())
    reporter = Reporter(client)
    root = host.sync(reporter).root_uuid
    # Instance one: nova already allocated VCPU on the root.
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    gen = client.get(f"/resource_providers/{root}").body["generation"]
    client.put(f"/resource_providers/{root}/inventories", {
        "resource_provider_generation": gen,
        "inventories": {"VCPU": {"total": 8}}})
    client.put(f"/allocations/{one}", {
        "allocations": {root: {"resources": {"VCPU": 2}}},
        "project_id": PROJECT, "user_id": USER,
        "consumer_generation": None, "consumer_type": "INSTANCE"},
        expect=(204,))
    host.claim(one, ["net1", "net1"])
    host.claim(two, ["grp1"])
    report = host.sync(reporter)
    assert sorted(report.healed_consumers) == sorted([one, two])
    found = providers(client, root)
    x710 = found[f"{host.nodename}_0000:3B:00.0_pcipt"]["uuid"]
    cx6 = found[f"{host.nodename}_0000:5E:00.0_pcipt"]["uuid"]
    body = client.get(f"/allocations/{one}").body
    assert {rp: a["resources"] for rp, a in body["allocations"].items()} \
        == {root: {"VCPU": 2}, x710: {"CUSTOM_PCI_8086_154C": 2}}
    assert (body["project_id"], body["user_id"]) == (PROJECT, USER)
    body = client.get(f"/allocations/{two}").body
    assert {rp: a["resources"] for rp, a in body["allocations"].items()} \
        == {cx6: {"CUSTOM_PCI_15B3_101E": 1}}
    assert body["project_id"] == INCOMPLETE_CONSUMER_ID
    consumer_gen = body["consumer_generation"]
    again = host.sync(reporter)
    assert again.writes == 0
    assert client.get(f"/allocations/{two}").body[
        "consumer_generation"] == consumer_gen
    # A unit too many in Placement is healed back to the ledger's count.
    client.put(f"/allocations/{two}", {
        "allocations": {cx6: {"resources": {"CUSTOM_PCI_15B3_101E": 2}}},
        "project_id": PROJECT, "user_id": USER,
        "consumer_generation": consumer_gen, "consumer_type": "INSTANCE"},
        expect=(204,))
    assert host.sync(reporter).healed_consumers == [two]
    assert client.get(f"/allocations/{two}").body["allocations"][cx6][
        "resources"] == {"CUSTOM_PCI_15B3_101E": 1}


def test_pf_vanished_with_allocations_is_kept_reserved(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    reporter = Reporter(client)
    instance = str(uuid.uuid4())
    host.claim(instance, ["grp1"])
    root = host.sync(reporter).root_uuid
    cx6_name = f"{host.nodename}_0000:5E:00.0_pcipt"
    cx6 = providers(client, root)[cx6_name]["uuid"]
    # The Mellanox card is gone from sysfs, its VF still held.
    shutil.rmtree(tmp_path / "sys")
    st.build_tree(tmp_path / "sys", st.HostLayout(
        (demo_hosts.DEMO_HOST_A.pfs[0],)))
    report = host.sync(reporter)
    assert report.kept_in_use == [cx6_name]
    assert report.deleted_providers == []
    assert report.unmapped == ["0000:5e:00.2"]
    inv = client.get(f"/resource_providers/{cx6}/inventories").body[
        "inventories"]["CUSTOM_PCI_15B3_101E"]
    assert inv["reserved"] == inv["total"] == 3
    # The allocation is intact.
    assert client.get(f"/allocations/{instance}").body["allocations"][
        cx6]["resources"] == {"CUSTOM_PCI_15B3_101E": 1}
    assert host.sync(reporter).writes == 0
    # Freed on the host and deleted by nova: the provider goes.
    host.free(instance)
    body = client.get(f"/allocations/{instance}").body
    client.put(f"/allocations/{instance}", {
        "allocations": {}, "project_id": body["project_id"],
        "user_id": body["user_id"],
        "consumer_generation": body["consumer_generation"],
        "consumer_type": "INSTANCE"}, expect=(204,))
    report = host.sync(reporter)
    assert report.deleted_providers == [cx6_name]
    assert cx6_name not in providers(client, root)


class _ConcurrentWriter(PlacementClient):
    """Another writer bumps a provider's generation between our read and
    our write, a real concurrent update on the real server, ``times``
    times."""

    def __init__(self, inner: PlacementClient, times: int) -> None:
        super().__init__(inner._adapter)
        self.times = times

    def call(self, method, path, body=None, expect=(200,)):
        if method == "PUT" and path.endswith("/inventories") and \
                self.times > 0:
            self.times -= 1
            traits_path = path.replace("/inventories", "/traits")
            current = super().call("GET", traits_path).body
            # Toggled: a traits PUT with the same set bumps nothing.
            traits = set(current["traits"]) ^ {"HW_NIC_SRIOV"}
            super().call("PUT", traits_path, {
                "resource_provider_generation":
                    current["resource_provider_generation"],
                "traits": sorted(traits)})
        return super().call(method, path, body, expect)


def test_generation_conflicts_are_retried_and_bounded(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    report = host.sync(Reporter(_ConcurrentWriter(client, times=2)))
    assert report.conflicts_retried == 2
    # The sync converged despite the other writer: nothing left to do.
    assert host.sync(Reporter(client)).writes == 0
    again = Host(tmp_path / "b", nodename())
    with pytest.raises(exception.PlacementConflict, match="3 attempts"):
        again.sync(Reporter(_ConcurrentWriter(client, times=99),
                            max_attempts=3))


def test_a_request_for_the_group_gets_only_group_devices(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    root = host.sync(Reporter(client)).root_uuid
    names_by_uuid = {p["uuid"]: n for n, p in
                     providers(client, root).items()}
    catalog = host.tree().catalog()
    offered = {}
    for flavor in ("net1", "mlx", "grp1"):
        got = set()
        for query in requests.request_queries(host.flavors, flavor, 1,
                                              catalog):
            body = client.get(f"/allocation_candidates?{query}").body
            for req in body["allocation_requests"]:
                got |= {names_by_uuid[rp] for rp in req["allocations"]
                        if rp in names_by_uuid}
        offered[flavor] = got
    cx6 = f"{host.nodename}_0000:5E:00.0_pcipt"
    assert offered["grp1"] == {cx6}
    assert cx6 not in offered["mlx"] and cx6 not in offered["net1"]
    assert offered["net1"] == {f"{host.nodename}_0000:3B:00.0_pcipt"}


def test_unknown_forbidden_trait_is_created_by_sync(tmp_path, client,
                                                    nodename) -> None:
    """A query forbids the marker of every special attribute: sync
    creates them even when no host carries the attribute, so the query
    gets no candidates rather than a 400."""
    host = Host(tmp_path, nodename(), st.HostLayout(
        (demo_hosts.DEMO_HOST_A.pfs[0],)))
    host.flavors = parse_flavors(
        demo_hosts.DEMO_FLAVORS, known_tags=host.specs.tag_names,
        special_attributes=["group", "trusted"])
    host.sync(Reporter(client))
    marker = names.marker_trait("trusted")
    assert client.get(f"/traits/{marker}", expect=(204,)).status == 204


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", *argv],
        capture_output=True, text=True, timeout=120)


def test_cli_sync_twice_and_request(tmp_path, placement_conf_file,
                                    client, nodename) -> None:
    host = Host(tmp_path, nodename())
    conf = write_demo_host_conf(tmp_path, host.nodename)
    args = ["--config-file", str(conf), "--config-file",
            str(placement_conf_file), "placement"]
    refused = _cli(*args, "sync")
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"The root provider {host.nodename} is not in Placement: " \
        f"start nova-compute first" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert client.get(f"/resource_providers?name={host.nodename}").body[
        "resource_providers"] == []
    first = _cli(*args, "sync", "--create-root", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["writes"] > 0
    second = _cli(*args, "sync", "--format", "json")
    assert json.loads(second.stdout)["writes"] == 0
    table = _cli(*args, "sync")
    assert table.returncode == 0, table.stderr
    assert "0 write(s), 0 conflict(s) retried; root provider " in \
        table.stdout
    out = _cli(*args, "request", "grp1", "--count", "2", "--format",
               "json")
    (query,) = json.loads(out.stdout)["queries"]
    body = client.get(f"/allocation_candidates?{query}").body
    root = json.loads(second.stdout)["root_uuid"]
    ours = {p["uuid"] for p in providers(client, root).values()}
    mine = [r for r in body["allocation_requests"]
            if set(r["allocations"]) <= ours]
    # Both VFs from the one grouped provider of this host.
    assert [list(r["allocations"].values()) for r in mine] == [
        [{"resources": {"CUSTOM_PCI_15B3_101E": 2}}]]


def test_cli_sync_timeout_is_one_line_and_ledger_untouched(
        tmp_path) -> None:
    host = Host(tmp_path, "cmp-timeout")
    host.claim(str(uuid.uuid4()), ["net1"])
    ledger = tmp_path / "claims.sqlite3"
    before = ledger.read_bytes()
    # A server that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client_conf = write_placement_conf(tmp_path / "placement.conf",
                                           port, timeout=1)
        conf = write_demo_host_conf(tmp_path, "cmp-timeout")
        result = _cli("--config-file", str(conf), "--config-file",
                      str(client_conf), "placement", "sync")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "unavailable" in result.stderr
    assert "Traceback" not in result.stderr
    assert ledger.read_bytes() == before


def test_provider_left_half_made_is_completed(tmp_path, client,
                                              nodename) -> None:
    """A sync that died right after creating a provider (no inventory,
    no traits yet) is completed by the next one, not refused as a
    duplicate name."""
    host = Host(tmp_path, nodename())
    root = client.post("/resource_providers",
                       {"name": host.nodename}).body["uuid"]
    name = f"{host.nodename}_0000:3B:00.0_pcipt"
    half = client.post("/resource_providers", {
        "name": name, "parent_provider_uuid": root}).body["uuid"]
    report = host.sync(Reporter(client))
    assert name not in report.created_providers
    assert name in report.updated_inventories
    assert name in report.updated_traits
    assert providers(client, root)[name]["uuid"] == half
    assert host.sync(Reporter(client)).writes == 0


def test_cli_sync_on_a_failing_placement_is_one_line(
        tmp_path, placement_installed) -> None:
    """A real Placement whose database lost a table answers 500: the
    command says so in one line and leaves the ledger alone."""
    import sqlite3

    import placement_server

    host = Host(tmp_path, "cmp-broken")
    host.claim(str(uuid.uuid4()), ["net1"])
    ledger = tmp_path / "claims.sqlite3"
    before = ledger.read_bytes()
    with placement_server.start(tmp_path / "broken") as server:
        db = sqlite3.connect(tmp_path / "broken" / "placement.db")
        db.execute("DROP TABLE resource_providers")
        db.commit()
        db.close()
        client_conf = server.write_client_config(tmp_path / "p.conf")
        conf = write_demo_host_conf(tmp_path, "cmp-broken")
        result = _cli("--config-file", str(conf), "--config-file",
                      str(client_conf), "placement", "sync")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "HTTP 500" in result.stderr and "unavailable" in result.stderr, \
        result.stderr
    assert ledger.read_bytes() == before


class _ConsumerWriter(PlacementClient):
    """Nova writes one of the consumers between the heal's read and its
    POST /allocations, ``times`` times: a real consumer generation
    conflict on the real server."""

    def __init__(self, inner: PlacementClient, consumer: str,
                 times: int) -> None:
        super().__init__(inner._adapter)
        self.consumer, self.times = consumer, times

    def call(self, method, path, body=None, expect=(200,)):
        if method == "POST" and path == "/allocations" and self.times > 0:
            self.times -= 1
            now = super().call("GET", f"/allocations/{self.consumer}").body
            super().call("PUT", f"/allocations/{self.consumer}", {
                "allocations": {rp: {"resources": a["resources"]}
                                for rp, a in now["allocations"].items()},
                "project_id": PROJECT, "user_id": USER,
                "consumer_generation": now["consumer_generation"],
                "consumer_type": "INSTANCE"}, expect=(204,))
        return super().call(method, path, body, expect)


def test_consumers_are_healed_in_one_write_and_conflicts_retried(
        tmp_path, client, nodename) -> None:
    host = Host(tmp_path, nodename())
    root = host.sync(Reporter(client)).root_uuid
    instances = [str(uuid.uuid4()) for _ in range(3)]
    for inst in instances:
        host.claim(inst, ["net1"])
    # Nova already wrote the first one (VCPU on the root).
    gen = client.get(f"/resource_providers/{root}").body["generation"]
    client.put(f"/resource_providers/{root}/inventories", {
        "resource_provider_generation": gen,
        "inventories": {"VCPU": {"total": 8}}})
    client.put(f"/allocations/{instances[0]}", {
        "allocations": {root: {"resources": {"VCPU": 1}}},
        "project_id": PROJECT, "user_id": USER,
        "consumer_generation": None, "consumer_type": "INSTANCE"},
        expect=(204,))
    report = host.sync(Reporter(_ConsumerWriter(client, instances[0], 2)))
    assert sorted(report.healed_consumers) == sorted(instances)
    assert report.conflicts_retried == 2
    x710 = providers(client, root)[
        f"{host.nodename}_0000:3B:00.0_pcipt"]["uuid"]
    for inst in instances:
        units = {rp: a["resources"] for rp, a in client.get(
            f"/allocations/{inst}").body["allocations"].items()}
        assert units[x710] == {"CUSTOM_PCI_8086_154C": 1}
    assert client.get(f"/allocations/{instances[0]}").body[
        "allocations"][root]["resources"] == {"VCPU": 1}
    assert host.sync(Reporter(client)).writes == 0
