"""The pytest plugin the package installs (entry point ``pytest11``
``pci_passthrough``): found and loaded by its name, cheap to load, and
its fixtures used as a nova-compute fork's or an operator's tests use
them: plainly here, and from a test folder of their own through
pytester."""

import importlib.metadata
import json
import pathlib
import subprocess
import sys

import pytest

from pci_passthrough import PortRequest, exception
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import standard_host
from pci_passthrough.fixtures.agent_host import Clock, new_uuid

pytest_plugins = ["pytester"]

ENTRY_POINT = "pci_passthrough"
PLUGIN = "pci_passthrough.fixtures.pytest_plugin"
# What pytest must not load in every run of an environment where the
# package is installed, only when a test asks for a fixture.
HEAVY = ("hypothesis", "libvirt", "lxml", "oslo_config",
         "pci_passthrough.agent", "pci_passthrough.fixtures.sysfs_tree",
         "pci_passthrough.fixtures.agent_host")


def test_the_plugin_loads_by_its_entry_point_name(pytestconfig):
    (entry,) = importlib.metadata.entry_points(group="pytest11",
                                               name=ENTRY_POINT)
    plugin = entry.load()
    assert plugin.__name__ == PLUGIN
    # pytest itself registered it under that name in this very run.
    assert pytestconfig.pluginmanager.get_plugin(ENTRY_POINT) is plugin


def test_loading_the_plugin_imports_nothing_heavy():
    probe = ("import importlib.metadata, json, sys\n"
             "(ep,) = importlib.metadata.entry_points("
             f"group='pytest11', name={ENTRY_POINT!r})\n"
             "ep.load()\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True,
                         capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert PLUGIN in loaded
    assert sorted(loaded & set(HEAVY)) == []


# -- plain use -----------------------------------------------------------


def test_sysfs_host_is_the_standard_host_as_the_kernel_lays_it_out(
        sysfs_host):
    result = sysfs_scan.scan(sysfs_host.root)
    assert not result.errors
    assert sorted(d.address for d in result.devices) == sorted(
        sysfs_host.devices)
    pfs = {d.address for d in result.devices if d.parent_addr is None}
    assert pfs == {standard_host.X710_ADDRESS, standard_host.CX6DX_ADDRESS}
    for vf in sysfs_host.vfs:
        physfn = sysfs_host.device_dir(vf.address) / "physfn"
        assert physfn.is_symlink()
        assert physfn.resolve() == sysfs_host.device_dir(
            vf.parent_addr).resolve()


@pytest.mark.parametrize("sysfs_layout", [standard_host.INTEL_LAYOUT])
def test_a_test_names_its_own_layout(sysfs_host, make_sysfs_tree):
    assert [d.address for d in sysfs_host.pfs] == [
        standard_host.X710_ADDRESS]
    other = make_sysfs_tree(standard_host.LAYOUT, "other")
    assert other.root == sysfs_host.root.parent / "other"
    assert len(sysfs_scan.scan(other.root).devices) == 7
    assert len(sysfs_scan.scan(sysfs_host.root).devices) == 4


def test_simulated_host_conf_points_at_sysfs_host(simulated_host_conf,
                                                  sysfs_host, tmp_path):
    group = simulated_host_conf.pci_passthrough
    assert group.sysfs_root == str(sysfs_host.root)
    assert list(group.device_spec) == list(standard_host.DEVICE_SPECS)
    assert list(group.flavor) == list(standard_host.FLAVORS)
    assert group.libvirt_uri == f"test://{tmp_path.resolve()}/libvirt.xml"


def test_host_agent_claims_from_the_standard_host(host_agent, sysfs_host):
    inst = new_uuid()
    claimed = host_agent.claim(inst, [PortRequest(0, flavor="net1"),
                                      PortRequest(1, flavor="grp1")])
    parents = [a.parent_addr for a in claimed]
    assert parents == [standard_host.X710_ADDRESS,
                       standard_host.CX6DX_ADDRESS]
    assert {a.address for a in claimed} <= {d.address
                                           for d in sysfs_host.vfs}
    assert [(p.index, p.address) for p in host_agent.plug(inst)] == [
        (a.port_index, a.address) for a in claimed]


@pytest.mark.parametrize("pci_flavors", [('{"name": "any"}',)])
def test_a_test_names_its_own_flavors(host_agent):
    with pytest.raises(exception.PciPassthroughError, match="net1"):
        host_agent.claim(new_uuid(), [PortRequest(0, flavor="net1")])
    (got,) = host_agent.claim(new_uuid(), [PortRequest(0, flavor="any")])
    assert got.flavor == "any"


def test_simulated_hosts_are_apart_and_share_a_connection_with_the_test(
        make_simulated_host):
    clock = Clock()
    src = make_simulated_host(clock=clock, in_memory_netdevs=True)
    dst = make_simulated_host(standard_host.INTEL_LAYOUT,
                              device_specs=standard_host.INTEL_DEVICE_SPECS,
                              flavors=standard_host.INTEL_FLAVORS,
                              network_name_prefix="dst-")
    assert src.tree.root.parent != dst.tree.root.parent
    assert len(dst.tree.vfs) == 3 and len(src.tree.vfs) == 5
    assert src.netdevs is not None and dst.netdevs is None
    inst = new_uuid()
    agent = src.new_agent()
    agent.claim(inst, [PortRequest(0, flavor="net1")])
    agent.plug(inst)
    names = [n.name() for n in src.conn.listAllNetworks(0)]
    assert names == [agent.network_name(inst, 0)]
    assert dst.conn.listAllNetworks(0) == []
    assert dst.conf.pci_passthrough.network_name_prefix == "dst-"


# -- as another project's tests use it -----------------------------------

OUTSIDE_TESTS = '''
import libvirt
import pytest

from pci_passthrough import PortRequest, exception
from pci_passthrough.fixtures import standard_host

KEPT = {}


def test_standard_host(host_agent, sysfs_host, make_simulated_host):
    KEPT["agent"] = host_agent
    host = make_simulated_host()
    KEPT["host"] = host
    KEPT["agent_of_host"] = host.new_agent()
    assert len(sysfs_host.vfs) == 5
    (got,) = host_agent.claim("4f1a2b3c-0000-4000-8000-00000000abcd",
                              [PortRequest(0, flavor="grp1")])
    assert got.parent_addr == standard_host.CX6DX_ADDRESS


def test_teardown_closed_what_the_fixtures_made():
    for name in ("agent", "agent_of_host"):
        with pytest.raises(exception.AgentClosed):
            KEPT[name].allocations()
    with pytest.raises(libvirt.libvirtError, match="invalid connection"):
        KEPT["host"].conn.isAlive()
'''

OUTSIDE_OVERRIDE = '''
import pytest

from pci_passthrough.fixtures import standard_host


@pytest.fixture
def sysfs_layout():
    return standard_host.INTEL_LAYOUT


def test_a_module_fixture_overrides_the_layout(sysfs_host):
    assert [d.address for d in sysfs_host.pfs] == [
        standard_host.X710_ADDRESS]
'''


def test_another_projects_tests_use_the_fixtures_by_name(pytester):
    pytester.makepyfile(test_outside=OUTSIDE_TESTS,
                        test_override=OUTSIDE_OVERRIDE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_plugin_can_be_left_out(pytester):
    pytester.makepyfile(test_outside=OUTSIDE_TESTS,
                        test_override=OUTSIDE_OVERRIDE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "-p", f"no:{ENTRY_POINT}")
    result.assert_outcomes(errors=2, failed=1)
    result.stdout.fnmatch_lines(["*fixture 'host_agent' not found*"])



def readme_plugin_sample() -> str:
    """The code sample of the README's "Tests for consuming projects"."""
    readme = (pathlib.Path(__file__).parents[2] / "README.rst").read_text()
    section = readme.split("Tests for consuming projects\n", 1)[1]
    block = section.split(".. code-block:: python\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("   "):
            break
        lines.append(line[3:])
    return "\n".join(lines)


def test_the_readme_sample_passes_as_an_outside_test(pytester):
    sample = readme_plugin_sample()
    assert "def test_" in sample
    pytester.makepyfile(test_readme=sample)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
