"""The availability index holds, in each pool, exactly the members the
chain's state filter passes, whatever claims, frees, journals, rescans
and another process's commits did: claims find every device explain
says serves, the pool counts hold no other, and device_states says the
same."""

import contextlib
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from pci_passthrough import exception
from pci_passthrough.config import devspec, flavors
from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.hygiene import NetdevState, VfState, to_json
from pci_passthrough.ledger import Ledger
from pci_passthrough.model.claims import PortRequest
from pci_passthrough.tracker import HostTracker

SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "vf", "vendor_id": "8086"}',
           '{"name": "pf", "vendor_id": "8086", "device_type": "type-PF"}')
PFS = ("0000:3b:00.0", "0000:af:00.0")
LAYOUT = st.HostLayout(tuple(
    st.PfLayout("intel-x710", pf, numvfs=2, netdev=f"ens{n}f0")
    for n, pf in enumerate(PFS)))
INSTANCES = tuple(str(uuid.UUID(int=n + 1)) for n in range(4))


JOURNAL = to_json(NetdevState(
    netdev="ens0f0v0", mac="02:00:00:00:03:01", mtu=1500, up=True,
    vf=VfState(pf="ens0f0", index=0, mac="02:00:00:00:03:01", vlan=0,
               qos=0, vlan_proto=0x8100, spoof_check=True, trust=False)))


def assert_index_follows_the_state_filter(tracker: HostTracker) -> None:
    states = tracker.device_states()  # also takes another's commits
    # Each device serves its own kind's flavor exactly when the chain's
    # state filter passes it: the verdicts are the filter's.
    served = {}
    for flavor in ("vf", "pf"):
        verdicts = tracker.explain(flavor, needs_netdev=False).devices
        served[flavor] = [v.address for v in verdicts if v.match]
        for v in verdicts:
            its_kind = (v.address in PFS) == (flavor == "pf")
            assert v.match == (its_kind
                               and states[v.address] == "available"), (
                flavor, v)
        # Claims pick from the index alone: it misses none of them.
        if served[flavor]:
            assert tracker.explain(flavor, count=len(served[flavor]),
                                   needs_netdev=False).satisfiable
    # And holds no other VF: the pool counts read its members.
    free_vfs = dict.fromkeys(PFS, 0)
    for address in served["vf"]:
        parent = tracker.device(address).parent_addr
        free_vfs[parent] += 1
    assert {c.pf: c.free for c in tracker.pool_counts()} == free_vfs


def set_link(tree: st.BuiltTree, pf: str, state: str) -> None:
    netdev = tree.devices[pf].netdev
    (tree.device_dir(pf) / "net" / netdev / "operstate").write_text(state)


steps = hst.lists(hst.tuples(
    hst.sampled_from(["claim-vf", "claim-pf", "free", "journal", "restore",
                      "link-down", "link-up"]),
    hst.integers(0, 3), hst.booleans()), max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_the_index_is_the_state_filter(tmp_path_factory, actions):
    tmp = tmp_path_factory.mktemp("index")
    tree = st.build_tree(tmp / "sys", LAYOUT)
    specs = devspec.parse_device_specs(SPECS)
    flavor_set = flavors.parse_flavors(FLAVORS, known_tags=specs.tag_names,
                                       special_attributes=[])
    # Two trackers on one ledger, as the agent and the CLI.
    pair = [HostTracker(flavor_set, Ledger(tmp / "claims.db"))
            for _ in range(2)]
    for tracker in pair:
        tracker.update_devices(sysfs_scan.scan(tree.root), specs)
    try:
        for action, n, second in actions:
            tracker, inst = pair[second], INSTANCES[n]
            if action.startswith("claim"):
                port = len(tracker.allocations(inst))
                with contextlib.suppress(exception.ClaimFailed):
                    tracker.claim(inst, [PortRequest(
                        port, flavor=action[-2:],
                        needs_netdev=action == "claim-vf")])
            elif action == "free":
                tracker.free(inst)
            elif action in ("journal", "restore"):
                held = sorted(a.address for a in tracker.allocations())
                address = (held or ["0000:3b:02.0"])[n % max(len(held), 1)]
                if action == "journal":
                    tracker.journal(address, JOURNAL)
                else:
                    tracker.forget_journal(address)
            else:
                set_link(tree, PFS[n % 2], action[5:])
                tracker.update_devices(sysfs_scan.scan(tree.root), specs)
            for each in pair:
                assert_index_follows_the_state_filter(each)
    finally:
        for tracker in pair:
            tracker.close()
