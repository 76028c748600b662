"""The host's doctor repairs (HostRepairs) on their own, over the parts
an agent gives them: a tracker on a real ledger and sysfs tree, the
in-memory NoopDriver's networks, in-memory VF netdevs.  Each repair
looks again before it acts: what changed since the checks is left,
saying why."""

import pytest

from pci_passthrough.agent import OperationGate
from pci_passthrough.agent.clock import lease_start
from pci_passthrough.agent.leases import Leases
from pci_passthrough.agent.networks import HostNetworks
from pci_passthrough.agent.vf_hygiene import VfHygiene
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.doctor.host_repairs import HostRepairs
from pci_passthrough.doctor.report import Finding, FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import Clock
from pci_passthrough.fixtures.netdevs import MemoryNetdevs
from pci_passthrough.hygiene import NetdevState
from pci_passthrough.hygiene import journal as netdev_journal
from pci_passthrough.ledger import Ledger
from pci_passthrough.metrics import Metrics
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.model.states import PortState
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.noop import NoopDriver
from pci_passthrough.tracker import HostTracker

INST = "4f1a2b3c-0000-4000-8000-0000000000aa"
PORT = [PortRequest(0, flavor="net1")]
NETWORK = f"pcipt-{INST}-0"


class Parts:
    def __init__(self, tmp_path):
        root = tmp_path / "sys"
        tree = st.build_tree(root, st.HostLayout((st.PfLayout(
            "intel-x710", "0000:3b:00.0", numvfs=1, netdev="ens1f0"),)))
        specs = devspec.parse_device_specs(
            ['{"vendor_id": "8086", "physical_network": "physnet1"}'])
        flavor_set = flavors.parse_flavors(
            ['{"name": "net1", "physical_network": "physnet1"}'],
            known_tags=specs.tag_names, special_attributes=[])
        ledger = Ledger(tmp_path / "db")
        self.tracker = HostTracker(flavor_set, ledger)
        self.tracker.update_devices(sysfs_scan.scan(root), specs)
        (self.vf,) = tree.vfs
        self.netdevs = MemoryNetdevs({self.vf.netdev: NetdevState(
            netdev=self.vf.netdev, mac="02:00:00:00:00:01", mtu=1500,
            up=True)})
        self.driver = NoopDriver()
        self.clock = Clock()
        gate = OperationGate()
        networks = HostNetworks("pcipt-", self.driver)
        leases = Leases(gate=gate, tracker=self.tracker, ledger=ledger,
                        release=self.tracker.free,
                        domains=self.driver.domain_presence,
                        metrics=Metrics(), clock=self.clock, timeout=60)
        self.repairs = HostRepairs(
            tracker=self.tracker, networks=networks, leases=leases,
            journals=VfHygiene(self.tracker, self.netdevs), locks=gate)

    def claimed(self):
        (alloc,) = self.tracker.claim(INST, PORT)
        return alloc


@pytest.fixture
def parts(tmp_path):
    p = Parts(tmp_path)
    yield p
    p.tracker.close()


def finding(kind, subject, fixable=True):
    return Finding(kind, subject, "what the checks saw", "the repair",
                   fixable=fixable)


def test_a_finding_not_safe_to_repair_is_left_with_its_repair(parts):
    found = finding(FindingKind.STALE_OUTGOING, f"instance {INST}",
                    fixable=False)
    left = parts.repairs.repair(found)
    assert not left.fixed
    assert left.left == "not safe to repair automatically: the repair"


def test_an_orphan_network_is_deleted_unless_claimed_meanwhile(parts):
    parts.driver.networks[NETWORK] = NetworkSpec(NETWORK, "eth9")
    orphan = finding(FindingKind.ORPHAN_NETWORK, f"network {NETWORK}")
    parts.claimed()
    assert parts.repairs.repair(orphan).left == \
        "its port was claimed meanwhile"
    assert NETWORK in parts.driver.networks
    parts.tracker.free(INST)
    assert parts.repairs.repair(orphan).fixed
    assert parts.driver.networks == {}


def test_a_missing_network_is_defined_unless_released_meanwhile(parts):
    parts.claimed()
    parts.tracker.transition(INST, PortState.PLUGGED)
    missing = finding(FindingKind.MISSING_NETWORK, f"network {NETWORK}")
    assert parts.repairs.repair(missing).fixed
    assert parts.driver.networks[NETWORK].netdev == parts.vf.netdev
    parts.tracker.free(INST)
    assert parts.repairs.repair(missing).left == \
        "its port was released meanwhile"


def test_an_expired_lease_confirmed_meanwhile_is_left(parts):
    parts.tracker.claim(INST, PORT, state=PortState.INCOMING,
                        lease_started=lease_start(parts.clock))
    parts.clock.now += 60
    expired = finding(FindingKind.LEASE_EXPIRED, f"instance {INST}")
    parts.tracker.transition(INST, PortState.PLUGGED)
    assert parts.repairs.repair(expired).left == \
        "confirmed or released meanwhile"
    assert parts.tracker.allocations(INST)


def test_an_unrestored_vf_is_restored_once(parts):
    before = parts.netdevs.states[parts.vf.netdev]
    parts.tracker.journal(parts.vf.address, netdev_journal.to_json(before))
    parts.netdevs.states[parts.vf.netdev] = NetdevState(
        netdev=parts.vf.netdev, mac="52:54:00:12:34:56", mtu=9000,
        up=False)
    unrestored = finding(FindingKind.VF_NOT_RESTORED,
                         f"device {parts.vf.address}")
    gone = parts.netdevs.states.pop(parts.vf.netdev)
    assert "not present" in parts.repairs.repair(unrestored).left
    parts.netdevs.states[parts.vf.netdev] = gone
    assert parts.repairs.repair(unrestored).fixed
    assert parts.netdevs.states[parts.vf.netdev] == before
    assert parts.tracker.journals() == {}
    # Restored meanwhile (by a release, say): nothing left to do.
    assert parts.repairs.repair(unrestored).fixed
