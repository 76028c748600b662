"""explain, claims, claim and free from the command line.

claim and free go through HostAgent on libvirt's test driver.  The
command opens its own connection; test:///default is one state shared by
every connection of the process while any is open, so the test holds one
open (``libvirt_conn``, in conftest.py) to see and make the networks the
command sees.  The host is cli_host.py's.
"""

import json
import uuid

import pytest
from cli_host import write_cli_host
from oslo_config import cfg

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.cli import main
from pci_passthrough.config import opts
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

INST = "4f1a2b3c-0000-4000-8000-00000000abcd"


@pytest.fixture
def conf(tmp_path):
    return write_cli_host(tmp_path)


def parsed(path: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf(["--config-file", path], default_config_files=[],
         default_config_dirs=[])
    return conf


def our_networks(conn, inst):
    return sorted(n.name() for n in conn.listAllNetworks(0)
                  if inst in n.name())


def cli(conf, *args):
    return main.main(["--config-file", conf, *args])


def test_explain_json_has_exactly_the_documented_shape(conf, capsys):
    assert cli(conf, "explain", "net1", "--count", "2", "--format",
               "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["flavor", "count", "satisfiable", "devices"]
    assert (doc["flavor"], doc["count"], doc["satisfiable"]) == (
        "net1", 2, True)
    for dev in doc["devices"]:
        assert list(dev) == ["address", "match", "reason"]
        assert (dev["reason"] is None) == dev["match"]
    why = {d["address"]: d["reason"] for d in doc["devices"]}
    assert why["0000:3b:00.0"] == "not assignable: no device_spec matches it"
    assert why["0000:5e:00.2"] == ("has no physical_network; the flavor "
                                   "asks for physnet1")
    assert why["0000:3b:02.2"].startswith("no netdev (bound to vfio-pci)")


def test_claim_claims_and_free(conf, capsys):
    assert cli(conf, "claim", INST, "net1,grp1", "--format", "json") == 0
    allocs = json.loads(capsys.readouterr().out)["allocations"]
    assert [(a["port_index"], a["flavor"]) for a in allocs] == [
        (0, "net1"), (1, "grp1")]
    assert cli(conf, "claims") == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "INSTANCE", "PORT", "ADDRESS", "NETDEV", "FLAVOR", "STATE"]
    assert INST in table and "claimed" in table
    assert cli(conf, "explain", "net1", "--count", "2") == 0
    out = capsys.readouterr().out
    assert f"in use by instance {INST} port 0" in out
    assert "This host CANNOT serve 2 x flavor net1." in out
    assert cli(conf, "free", INST, "--format", "json") == 0
    assert len(json.loads(capsys.readouterr().out)["allocations"]) == 2
    assert cli(conf, "claims", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"allocations": []}


@pytest.mark.parametrize("args,message", [
    (["claim", "not-a-uuid", "net1"], "Invalid instance id 'not-a-uuid'"),
    (["free", INST.upper()], "expected a canonical UUID"),
    (["explain", "nope"], "Unknown PCI flavor 'nope'; known flavors: grp1, "
                          "net1"),
    (["explain", "net1", "--numa-cells", "one"],
     "--numa-cells 'one' is not a list of node numbers"),
    (["claim", INST, "grp1,grp1,grp1"],
     f"instance {INST} port 2 (flavor grp1)"),
])
def test_errors_are_one_clear_line(conf, capsys, args, message):
    assert cli(conf, *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_failed_claim_changes_nothing(conf, capsys):
    assert cli(conf, "claim", INST, "net1,net1,net1") == 1
    capsys.readouterr()
    assert cli(conf, "claims", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"allocations": []}


def test_explain_honours_numa_cells(conf, capsys):
    # Every VF of the tree is on NUMA node 0: cell 1 excludes them all
    # under the default (legacy) policy.
    assert cli(conf, "explain", "net1", "--numa-cells", "1", "--format",
               "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["satisfiable"] is False
    reasons = {d["reason"] for d in doc["devices"] if d["reason"]}
    assert any(r.startswith("on NUMA node 0; the instance's cells are 1")
               for r in reasons)
    assert cli(conf, "explain", "net1", "--numa-cells", "0,1") == 0
    assert "This host can serve 1 x flavor net1." in capsys.readouterr().out


def test_free_deletes_the_instances_networks_then_frees(conf, capsys,
                                                        libvirt_conn):
    inst = str(uuid.uuid4())
    ports = [PortRequest(0, flavor="net1"), PortRequest(1, flavor="grp1")]
    # nova-compute's agent boots the instance on the shared test host.
    with HostAgent(parsed(conf), network_driver=LibvirtMacvtapDriver(
            parsed(conf), connection=libvirt_conn)) as agent:
        agent.start()
        agent.claim(inst, ports)
        agent.plug(inst)
    assert our_networks(libvirt_conn, inst) == [f"pcipt-{inst}-0",
                                                f"pcipt-{inst}-1"]
    assert cli(conf, "free", inst, "--format", "json") == 0
    freed = json.loads(capsys.readouterr().out)["allocations"]
    assert [a["port_index"] for a in freed] == [0, 1]
    assert our_networks(libvirt_conn, inst) == []
    assert cli(conf, "claims", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == {"allocations": []}
    # libvirt's own network is not ours and stays.
    assert libvirt_conn.networkLookupByName("default").isActive()


def test_free_refuses_and_frees_nothing_when_libvirt_is_unreachable(
        tmp_path, capsys):
    conf = write_cli_host(tmp_path,
                          libvirt_uri="test:///nonexistent/host.xml")
    assert cli(conf, "claim", INST, "net1") == 0
    capsys.readouterr()
    assert cli(conf, "free", INST) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"Cannot free instance {INST}" in err
    assert "Nothing was freed" in err
    assert "test:///nonexistent/host.xml" in err
    assert f"run 'pci-passthrough free {INST}' again" in err
    assert cli(conf, "claims", "--format", "json") == 0
    held = json.loads(capsys.readouterr().out)["allocations"]
    assert [(a["instance_uuid"], a["state"]) for a in held] == [
        (INST, "claimed")]


def test_claim_goes_through_the_agent(conf, capsys):
    # A repeated claim is the agent's: the same request returns the port
    # held, another flavor for it is an error naming both.
    assert cli(conf, "claim", INST, "net1", "--format", "json") == 0
    first = json.loads(capsys.readouterr().out)["allocations"]
    assert cli(conf, "claim", INST, "net1", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["allocations"] == first
    assert first[0]["network"] == f"pcipt-{INST}-0"
    assert cli(conf, "claim", INST, "grp1") == 1
    err = capsys.readouterr().err
    assert (f"Instance {INST} port 0 already holds device "
            f"{first[0]['address']} with flavor 'net1'; the request asks "
            f"for 'grp1'") in err
