"""doctor against a real Placement: a synced host is clean and reading
changes nothing; drift in providers and units is found and repaired by
one sync; allocations no claim explains are reported and never touched;
an instance migrating away is left to Nova's migration consumer; the
CLI exits 0, 1 or 2, and 2 (Placement unreachable) changes nothing."""

import json
import subprocess
import sys
import uuid

import pytest
from conf_files import closed_port, write_demo_host_conf, write_placement_conf
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.doctor.report import PLACEMENT_KINDS
from pci_passthrough.placement.host import host_view
from pci_passthrough.placement.sync import Reporter

pytestmark = [pytest.mark.functional, pytest.mark.placement]

X710_CLASS = "CUSTOM_PCI_8086_154C"
CX6_CLASS = "CUSTOM_PCI_15B3_101E"




def ports(*flavors):
    return [PortRequest(i, flavor=f, needs_netdev=False)
            for i, f in enumerate(flavors)]


def sync(conf, client):
    return host_view(conf).sync(Reporter(client))


def placement_findings(report):
    return [(f.kind.value, f.subject, f.fixable, f.fixed)
            for f in report.findings if f.kind in PLACEMENT_KINDS]


def state(client, root):
    """Every generation in the tree and each consumer's on it."""
    rps = client.get(f"/resource_providers?in_tree={root}").body[
        "resource_providers"]
    gens = {rp["uuid"]: rp["generation"] for rp in rps}
    for rp in rps:
        allocs = client.get(f"/resource_providers/{rp['uuid']}/"
                            f"allocations").body["allocations"]
        for consumer in allocs:
            gens[consumer] = client.get(f"/allocations/{consumer}").body[
                "consumer_generation"]
    return gens


def put_allocation(client, consumer, allocations, kind="INSTANCE"):
    body = client.get(f"/allocations/{consumer}").body
    client.put(f"/allocations/{consumer}", {
        "allocations": {rp: {"resources": res}
                        for rp, res in allocations.items()},
        "project_id": body.get("project_id", "p"),
        "user_id": body.get("user_id", "u"),
        "consumer_generation": body.get("consumer_generation"),
        "consumer_type": kind}, expect=(204,))


def units(client, consumer):
    return {rp: a["resources"] for rp, a in client.get(
        f"/allocations/{consumer}").body["allocations"].items()}


def test_a_synced_host_is_clean_and_doctor_writes_nothing(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(str(uuid.uuid4()), ports("net1", "net1"))
        agent.claim(str(uuid.uuid4()), ports("grp1"))
        root = sync(conf, client).root_uuid
        before = state(client, root)
        report = agent.doctor(placement=client)
        assert report.findings == ()
        assert agent.doctor(fix=True, placement=client).findings == ()
        assert state(client, root) == before


def test_drift_is_found_and_one_sync_repairs_what_is_ours(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    one, two, stranger = (str(uuid.uuid4()) for _ in range(3))
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(one, ports("net1", "net1"))
        agent.claim(two, ports("grp1"))
        synced = sync(conf, client)
        x710 = synced.provider_uuids[f"{conf.pci_passthrough.nodename}"
                                     f"_0000:3B:00.0_pcipt"]
        cx6 = synced.provider_uuids[f"{conf.pci_passthrough.nodename}"
                                    f"_0000:5E:00.0_pcipt"]
        # An operator's hand: max_unit lowered, a trait removed; one
        # unit of instance one lost; a consumer nobody claimed here.
        inv = client.get(f"/resource_providers/{x710}/inventories").body
        client.put(f"/resource_providers/{x710}/inventories", {
            "resource_provider_generation":
                inv["resource_provider_generation"],
            "inventories": {X710_CLASS: dict(
                inv["inventories"][X710_CLASS], max_unit=1)}})
        traits = client.get(f"/resource_providers/{x710}/traits").body
        client.put(f"/resource_providers/{x710}/traits", {
            "resource_provider_generation":
                traits["resource_provider_generation"],
            "traits": sorted(set(traits["traits"])
                             - {"CUSTOM_PHYSNET_PHYSNET1"})})
        put_allocation(client, one, {x710: {X710_CLASS: 1}})
        put_allocation(client, stranger, {cx6: {CX6_CLASS: 1}})

        report = agent.doctor(placement=client)
        name = f"{conf.pci_passthrough.nodename}_0000:3B:00.0_pcipt"
        assert placement_findings(report) == [
            ("placement-provider", f"provider {name}", True, False),
            ("placement-allocation", f"instance {one}", True, False),
            ("placement-consumer", f"consumer {stranger}", False, False)]
        provider = report.findings[0]
        assert "max_unit 1, the host says 4" in provider.problem
        assert "traits missing: CUSTOM_PHYSNET_PHYSNET1" in provider.problem

        fixed = agent.doctor(fix=True, placement=client)
        assert placement_findings(fixed) == [
            ("placement-provider", f"provider {name}", True, True),
            ("placement-allocation", f"instance {one}", True, True),
            ("placement-consumer", f"consumer {stranger}", False, False)]
        assert fixed.findings[2].left.startswith("not safe")
        assert units(client, one) == {x710: {X710_CLASS: 2}}
        # Not ours to remove: the stranger keeps its unit.
        assert units(client, stranger) == {cx6: {CX6_CLASS: 1}}
        again = agent.doctor(placement=client)
        assert placement_findings(again) == [
            ("placement-consumer", f"consumer {stranger}", False, False)]


def test_a_host_placement_never_saw_is_left_to_nova_compute(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    node = conf.pci_passthrough.nodename
    instance = str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.claim(instance, ports("grp1"))
        expected = [
            ("placement-provider", f"provider {node}", False, False),
            ("placement-provider", f"provider {node}_0000:3B:00.0_pcipt",
             False, False),
            ("placement-provider", f"provider {node}_0000:5E:00.0_pcipt",
             False, False)]
        assert placement_findings(agent.doctor(placement=client)) == \
            expected
        # --fix creates no root: nova-compute makes it with the compute
        # node's UUID.
        fixed = agent.doctor(fix=True, placement=client)
        assert placement_findings(fixed) == expected
        assert client.get(f"/resource_providers?name={node}").body[
            "resource_providers"] == []
        # Once the root exists (here as nova-compute would make it),
        # --fix reports the rest.
        root = str(uuid.uuid4())
        client.post("/resource_providers", {"name": node, "uuid": root})
        found = placement_findings(agent.doctor(placement=client))
        assert [f[1] for f in found] == [
            f"provider {node}_0000:3B:00.0_pcipt",
            f"provider {node}_0000:5E:00.0_pcipt", f"instance {instance}"]
        fixed = agent.doctor(fix=True, placement=client)
        assert all(f.fixed for f in fixed.findings), fixed
        assert agent.doctor(placement=client).findings == ()
        rps = client.get(f"/resource_providers?in_tree={root}").body[
            "resource_providers"]
        assert {rp["name"] for rp in rps} == {
            node, f"{node}_0000:3B:00.0_pcipt", f"{node}_0000:5E:00.0_pcipt"}


def test_a_migration_away_is_left_to_its_migration_consumer(
        tmp_path, client, nodename) -> None:
    source = agent_host(tmp_path / "src", nodename())
    dest = agent_host(tmp_path / "dst", nodename())
    instance, migration = str(uuid.uuid4()), str(uuid.uuid4())
    with HostAgent(source) as src, HostAgent(dest) as dst:
        src.start()
        dst.start()
        src.claim(instance, ports("net1"))
        src.plug(instance)
        src_rp = sync(source, client).provider_uuids[
            f"{source.pci_passthrough.nodename}_0000:3B:00.0_pcipt"]
        dst_rp = sync(dest, client).provider_uuids[
            f"{dest.pci_passthrough.nodename}_0000:3B:00.0_pcipt"]
        # Nova's move: the source's units go to the migration, the
        # instance's to the destination.
        put_allocation(client, migration, {src_rp: {X710_CLASS: 1}},
                       kind="MIGRATION")
        put_allocation(client, instance, {dst_rp: {X710_CLASS: 1}})
        src.begin_outgoing_migration(instance)
        dst.prepare_incoming_migration(instance, ports("net1"))
        assert placement_findings(src.doctor(placement=client)) == []
        assert placement_findings(dst.doctor(placement=client)) == []
        # Nor does a sync of the source give the instance its units
        # back there.
        report = sync(source, client)
        assert report.healed_consumers == []
        assert units(client, instance) == {dst_rp: {X710_CLASS: 1}}
        # Done, but Nova never dropped the migration's allocation.
        src.complete_outgoing_migration(instance)
        dst.complete_incoming_migration(instance)
        (leak,) = src.doctor(fix=True, placement=client).findings
        assert (leak.kind.value, leak.subject, leak.fixed) == (
            "placement-consumer", f"consumer {migration}", False)
        assert "a migration's allocation" in leak.problem
        assert units(client, migration) == {src_rp: {X710_CLASS: 1}}


def test_an_expired_lease_freed_by_fix_shows_its_allocation(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    # A lease ends only once libvirt says the incoming domain is gone:
    # the macvtap driver on the host's test-driver state can say so.
    conf.set_override("network_driver", "libvirt_macvtap",
                      group="pci_passthrough")
    instance = str(uuid.uuid4())
    now = [1_000_000.0]
    with HostAgent(conf, clock=lambda: now[0]) as agent:
        agent.start()
        agent.prepare_incoming_migration(instance, ports("net1"))
        sync(conf, client)  # Placement holds its units, as Nova's would
        assert agent.doctor(placement=client).findings == ()
        now[0] += conf.pci_passthrough.incoming_migration_timeout + 1
        report = agent.doctor(fix=True, placement=client)
        assert [(f.kind.value, f.fixed) for f in report.findings] == [
            ("lease-expired", True), ("placement-consumer", False)]
        assert report.findings[1].subject == f"consumer {instance}"
        assert agent.allocations(instance) == []


# -- the command ------------------------------------------------------------

def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pci_passthrough.cli.main", *argv],
        capture_output=True, text=True, timeout=120)


def _host_conf_file(tmp_path, node: str):
    return write_demo_host_conf(tmp_path, node, network_driver="noop")


def test_cli_doctor_with_placement_exits_1_then_0(
        tmp_path, placement_conf_file, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    node = conf.pci_passthrough.nodename
    with HostAgent(conf) as agent:
        agent.claim(str(uuid.uuid4()), ports("net1"))
    args = ["--config-file", str(_host_conf_file(tmp_path, node)),
            "--config-file", str(placement_conf_file), "doctor"]
    client.post("/resource_providers", {"name": node})  # nova-compute's
    found = _cli(*args, "--format", "json")
    assert found.returncode == 1, found.stderr
    kinds = {f["kind"] for f in json.loads(found.stdout)["findings"]}
    assert kinds == {"placement-provider", "placement-allocation"}
    fixed = _cli(*args, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "0 left." in fixed.stdout
    clean = _cli(*args)
    assert clean.returncode == 0 and "No findings." in clean.stdout


def test_cli_doctor_with_placement_unreachable_exits_2_changing_nothing(
        tmp_path) -> None:
    conf = agent_host(tmp_path, "cmp-unreachable")
    with HostAgent(conf) as agent:
        agent.claim(str(uuid.uuid4()), ports("net1"))
    ledger = tmp_path / "claims.sqlite3"
    before = ledger.read_bytes()
    client_conf = write_placement_conf(tmp_path / "placement.conf",
                                       closed_port(), timeout=2)
    args = ["--config-file", str(_host_conf_file(tmp_path,
                                                 "cmp-unreachable")),
            "--config-file", str(client_conf), "doctor"]
    for extra in ([], ["--fix"]):
        result = _cli(*args, *extra)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert "unavailable" in result.stderr
        assert "--skip-placement" in result.stderr
        assert "Traceback" not in result.stderr
        assert ledger.read_bytes() == before
    alone = _cli(*args, "--skip-placement")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert ledger.read_bytes() == before


def test_an_adapter_that_raises_on_errors_serves_as_nova_s_does(
        tmp_path, placement, nodename) -> None:
    """nova's report client builds its keystoneauth1 adapter without
    raise_exc=False; the fork hands that adapter over.  A 404 is still
    a refusal naming the call, not "unavailable", and a doctor --fix
    that meets no error repairs as with the library's own adapter."""
    from keystoneauth1 import adapter, session
    from keystoneauth1.token_endpoint import Token

    from pci_passthrough import exception
    from pci_passthrough.placement.client import PlacementClient

    nova_like = adapter.Adapter(
        session.Session(auth=Token(placement.url, "admin")),
        service_type="placement")
    client = PlacementClient(nova_like)
    with pytest.raises(exception.PlacementRequestFailed, match="HTTP 404"):
        client.get(f"/resource_providers/{uuid.uuid4()}")
    conf = agent_host(tmp_path, nodename())
    node = conf.pci_passthrough.nodename
    client.post("/resource_providers", {"name": node})
    with HostAgent(conf) as agent:
        agent.claim(str(uuid.uuid4()), ports("net1"))
        fixed = agent.doctor(fix=True, placement=client)
        assert fixed.findings and all(f.fixed for f in fixed.findings)
        assert agent.doctor(placement=client).findings == ()
