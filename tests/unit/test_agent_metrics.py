"""HostAgent's metrics and ``pci-passthrough metrics``, read back with
prometheus-client's own text parser: pools from a real sysfs tree and
ledger, operations through HostAgent on libvirt's test driver."""

import os
import pathlib

import pytest
from conf_files import write_host_conf
from hypothesis import given, settings
from hypothesis import strategies as hst
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.cli import main
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, Clock, new_uuid
from pci_passthrough.fixtures.standard_host import CX6DX_ADDRESS as PF_M
from pci_passthrough.fixtures.standard_host import DEVICE_SPECS as SPECS
from pci_passthrough.fixtures.standard_host import FLAVORS, LAYOUT
from pci_passthrough.fixtures.standard_host import X710_ADDRESS as PF_A
from pci_passthrough.metrics import Metrics, exposition
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

EXAMPLES = int(os.environ.get("PCI_PASSTHROUGH_HYPOTHESIS_EXAMPLES", "10"))

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return types, samples


def pool(samples: Samples, pf: str, state: str) -> float:
    """The one pool_vfs sample of ``pf`` in ``state`` (any tags)."""
    found = [v for (name, labels), v in samples.items()
             if name == "pci_passthrough_pool_vfs"
             and ("pf", pf) in labels and ("state", state) in labels]
    assert len(found) == 1, (pf, state, found)
    return found[0]


class Host(AgentHost):
    def __init__(self, workdir: pathlib.Path,
                 metrics: Metrics | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__(workdir, LAYOUT, device_specs=SPECS,
                         flavors=FLAVORS, clock=clock or Clock())
        self.agent = self.new_agent(metrics=metrics)

    def scrape(self) -> tuple[dict[str, str], Samples]:
        # As the nova-compute fork does: the agent's collector in a
        # registry of the service's own.
        registry = CollectorRegistry()
        registry.register(self.agent.metrics)
        return parse(generate_latest(registry).decode())


def plug_and_lose_its_network(h: Host) -> str:
    """A new instance plugged on one net1 port, whose network libvirt
    then lost (stopped and undefined behind the agent's back)."""
    inst = new_uuid()
    h.agent.claim(inst, [PortRequest(0, flavor="net1")])
    h.agent.plug(inst)
    net = h.conn.networkLookupByName(h.agent.network_name(inst, 0))
    net.destroy()
    net.undefine()
    return inst


@pytest.fixture
def host(tmp_path):
    with Host(tmp_path / "h") as h:
        yield h



def test_pool_gauges_follow_claims_and_health(host):
    types, samples = host.scrape()
    assert types["pci_passthrough_pool_vfs"] == "gauge"
    assert samples[("pci_passthrough_pool_vfs", frozenset({
        ("pf", PF_A), ("physical_network", "physnet1"),
        ("group", ""), ("state", "free")}))] == 3
    assert pool(samples, PF_M, "free") == 2
    assert samples[("pci_passthrough_pool_source_up", frozenset())] == 1
    inst = new_uuid()
    host.agent.claim(inst, [PortRequest(0, flavor="net1")])
    _, samples = host.scrape()
    assert (pool(samples, PF_A, "free"), pool(samples, PF_A, "held")) == \
        (2, 1)
    # Carrier lost: the free VFs of the PF count as unhealthy, the held
    # one stays held.
    dev = host.tree.devices[PF_A]
    (dev.path / "net" / "ens1f0" / "operstate").write_text("down\n")
    host.agent.refresh()
    _, samples = host.scrape()
    assert [pool(samples, PF_A, s) for s in
            ("free", "held", "unhealthy", "other")] == [0, 1, 2, 0]
    assert pool(samples, PF_M, "free") == 2


def test_operations_are_counted_and_timed(host):
    inst = new_uuid()
    host.agent.claim(inst, [PortRequest(0, flavor="net1",
                                        mac="fa:16:3e:00:00:01")])
    host.agent.plug(inst)
    with pytest.raises(exception.ClaimFailed):
        host.agent.claim(new_uuid(), [PortRequest(i, flavor="grp1")
                                      for i in range(3)])
    host.agent.release(inst)
    host.agent.release(inst)  # nothing held: not counted again
    types, samples = host.scrape()
    for name in ("claims", "claim_failures", "plugs", "releases"):
        assert types[f"pci_passthrough_{name}"] == "counter"
    got = {name: samples[(f"pci_passthrough_{name}_total", frozenset())]
           for name in ("claims", "claim_failures", "plugs",
                        "plug_failures", "releases")}
    assert got == {"claims": 1, "claim_failures": 1, "plugs": 1,
                   "plug_failures": 0, "releases": 1}
    assert types["pci_passthrough_claim_duration_seconds"] == "histogram"
    assert samples[("pci_passthrough_claim_duration_seconds_count",
                    frozenset())] == 2
    assert samples[("pci_passthrough_plug_duration_seconds_count",
                    frozenset())] == 1


def test_incoming_migrations_are_counted_apart_and_each_end_once(tmp_path):
    clock = Clock()
    h = Host(tmp_path / "h", clock=clock)
    try:
        done, aborted, expired, source = (new_uuid() for _ in range(4))
        net1 = [PortRequest(0, flavor="net1")]
        h.agent.prepare_incoming_migration(done, net1)
        h.agent.prepare_incoming_migration(done, net1)  # a retry
        h.agent.complete_incoming_migration(done)
        h.agent.complete_incoming_migration(done)  # idempotent
        h.agent.prepare_incoming_migration(aborted, [
            PortRequest(0, flavor="grp1")])
        h.agent.abort_incoming_migration(aborted)
        h.agent.abort_incoming_migration(aborted)  # nothing held now
        with pytest.raises(exception.MigrationRefused):
            h.agent.prepare_incoming_migration(new_uuid(), [
                PortRequest(i, flavor="grp1") for i in range(3)])
        h.agent.prepare_incoming_migration(expired, net1)
        clock.now += 1800
        assert h.agent.refresh().expired_leases == (expired,)
        # The source side: a completed outgoing migration is a release.
        h.agent.claim(source, net1)
        h.agent.plug(source)
        h.agent.begin_outgoing_migration(source)
        h.agent.complete_outgoing_migration(source)
        h.agent.complete_outgoing_migration(source)
        types, samples = h.scrape()

        def total(name: str, **labels: str) -> float:
            return samples[(f"pci_passthrough_{name}_total",
                            frozenset(labels.items()))]

        assert types["pci_passthrough_incoming_migration_prepares"] == \
            "counter"
        assert total("incoming_migration_prepares") == 4
        assert total("incoming_migration_prepare_failures") == 1
        assert types["pci_passthrough_incoming_migration_ends"] == "counter"
        assert {o: total("incoming_migration_ends", outcome=o)
                for o in ("completed", "aborted", "expired")} == {
            "completed": 1, "aborted": 1, "expired": 1}
        assert total("releases") == 3  # aborted, expired, outgoing
        # The destination's claims are not the instances' own claims.
        assert (total("claims"), total("claim_failures")) == (1, 0)
        name = "pci_passthrough_incoming_migration_prepare_duration_seconds"
        assert types[name] == "histogram"
        assert samples[(name + "_count", frozenset())] == 5
        assert samples[(name + "_bucket", frozenset({("le", "+Inf")}))] \
            == 5
    finally:
        h.close()


def test_reconcile_and_doctor_repairs_are_counted(tmp_path):
    h = Host(tmp_path / "h")
    try:
        plug_and_lose_its_network(h)
        report = h.agent.doctor(fix=True)
        assert [f.kind.value for f in report.findings if f.fixed] == \
            ["missing-network"]
        prefix = h.conf.pci_passthrough.network_name_prefix
        orphan = f"{prefix}{new_uuid()}-0"
        h.conn.networkDefineXML(
            f"<network><name>{orphan}</name><forward mode='bridge'>"
            f"<interface dev='eth0'/></forward></network>").create()
        h.agent.close()
        # A new agent's start() reconciles, counted in the Metrics it
        # was given.
        mine = Metrics()
        h.agent = HostAgent(h.conf, network_driver=LibvirtMacvtapDriver(
            h.conf, connection=h.conn), metrics=mine)
        h.agents.append(h.agent)  # closed with the host
        assert h.agent.metrics is mine
        h.agent.start()
        _, samples = h.scrape()
        assert samples[("pci_passthrough_reconcile_actions_total",
                        frozenset({("action", "deleted")}))] == 1
        # The given Metrics reads its pools from this agent.
        assert pool(samples, PF_A, "held") == 1
        # Its counters are its own: the first agent's repair is not here.
        counted = parse(exposition(mine))[1]
        assert ("pci_passthrough_doctor_repairs_total",
                frozenset({("kind", "missing_network")})) not in counted
    finally:
        h.close()


def test_the_first_agent_counted_its_doctor_repair(tmp_path):
    h = Host(tmp_path / "h")
    try:
        plug_and_lose_its_network(h)
        h.agent.doctor(fix=True)
        h.agent.doctor(fix=False)  # finds nothing more, repairs nothing
        _, samples = h.scrape()
        assert samples[("pci_passthrough_doctor_repairs_total",
                        frozenset({("kind", "missing_network")}))] == 1
    finally:
        h.close()


def test_doctor_findings_left_and_its_last_run_are_gauges(tmp_path):
    h = Host(tmp_path / "h")
    try:
        _, samples = h.scrape()
        assert not [k for k in samples if k[0].startswith(
            "pci_passthrough_doctor_last_run")]
        plug_and_lose_its_network(h)
        missing = ("pci_passthrough_doctor_findings",
                   frozenset({("kind", "missing_network")}))
        h.agent.doctor()
        _, samples = h.scrape()
        assert samples[missing] == 1
        ran = samples[("pci_passthrough_doctor_last_run_timestamp_seconds",
                       frozenset())]
        assert ran > 1_600_000_000
        # Repaired: the kind stays, at 0.
        h.agent.doctor(fix=True)
        _, samples = h.scrape()
        assert samples[missing] == 0
    finally:
        h.close()


# -- the command ---------------------------------------------------------


def test_metrics_command_prints_the_pools(tmp_path, capsys):
    h = Host(tmp_path / "h")
    try:
        h.agent.claim(new_uuid(), [PortRequest(0, flavor="grp1")])
        group = h.conf.pci_passthrough
        config = write_host_conf(
            tmp_path / "pci.conf", sysfs_root=group.sysfs_root,
            state_path=group.state_path, device_specs=SPECS,
            flavors=FLAVORS)
        before = pathlib.Path(group.state_path).read_bytes()
        assert main.main(["--config-file", str(config), "metrics"]) == 0
        _, samples = parse(capsys.readouterr().out)
        assert samples[("pci_passthrough_pool_vfs", frozenset({
            ("pf", PF_M), ("physical_network", "physnet2"),
            ("group", "grp1"), ("state", "held")}))] == 1
        assert pool(samples, PF_M, "free") == 1
        assert pool(samples, PF_A, "free") == 3
        assert samples[("pci_passthrough_claims_total", frozenset())] == 0
        assert pathlib.Path(group.state_path).read_bytes() == before
        out = tmp_path / "textfile" / "pci.prom"
        out.parent.mkdir()
        assert main.main(["--config-file", str(config), "metrics",
                          "--output", str(out)]) == 0
        assert parse(out.read_text())[1] == samples
        assert os.listdir(out.parent) == ["pci.prom"]
    finally:
        h.close()


def test_metrics_command_never_creates_the_ledger(tmp_path, capsys):
    root = tmp_path / "sys"
    st.build_tree(root, LAYOUT)
    state = tmp_path / "state"
    config = write_host_conf(tmp_path / "pci.conf", sysfs_root=root,
                             state_path=state / "claims.db",
                             device_specs=SPECS)
    assert main.main(["--config-file", str(config), "metrics"]) == 0
    assert not state.exists()
    _, samples = parse(capsys.readouterr().out)
    assert pool(samples, PF_A, "free") == 3


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(steps=hst.lists(hst.tuples(
    hst.sampled_from(["claim", "release", "down", "up", "unbind"]),
    hst.sampled_from([PF_A, PF_M])), min_size=1, max_size=6))
def test_pool_gauges_agree_with_device_states(tmp_path_factory, steps):
    h = Host(tmp_path_factory.mktemp("h"))
    held: list[str] = []
    try:
        for op, pf in steps:
            dev = h.tree.devices[pf]
            state = dev.path / "net" / str(dev.netdev) / "operstate"
            if op == "claim":
                inst = new_uuid()
                flavor = "net1" if pf == PF_A else "grp1"
                try:
                    h.agent.claim(inst, [PortRequest(0, flavor=flavor)])
                    held.append(inst)
                except exception.ClaimFailed:
                    pass
            elif op == "release" and held:
                h.agent.release(held.pop(0))
            elif op in ("down", "up"):
                state.write_text(op + "\n")
            elif op == "unbind":
                (dev.path / "driver").unlink(missing_ok=True)
            h.agent.refresh()
            states = h.agent.device_states()
            _, samples = h.scrape()
            for each in (PF_A, PF_M):
                vfs = [a for a, d in h.tree.devices.items()
                       if d.parent_addr == each]
                seen = [states[a] for a in vfs]
                assert pool(samples, each, "free") == \
                    seen.count("available")
                assert pool(samples, each, "held") == sum(
                    s in ("claimed", "plugged") for s in seen)
                assert pool(samples, each, "unhealthy") == \
                    seen.count("unhealthy")
                assert sum(pool(samples, each, s) for s in
                           ("free", "held", "unhealthy", "other")) == \
                    len(vfs)
    finally:
        h.close()


def test_metrics_output_that_cannot_be_written_is_a_clear_error(
        tmp_path, capsys):
    root = tmp_path / "sys"
    st.build_tree(root, LAYOUT)
    config = write_host_conf(tmp_path / "pci.conf", sysfs_root=root,
                             state_path=tmp_path / "claims.db",
                             device_specs=SPECS)
    target = tmp_path / "missing" / "pci.prom"
    assert main.main(["--config-file", str(config), "metrics",
                      "--output", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pci-passthrough: error: Cannot write the "
                          f"metrics to {target}: No such file or "
                          f"directory; expected")
    assert not (tmp_path / "missing").exists()
