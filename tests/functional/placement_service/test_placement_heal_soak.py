"""Healing races releases, against a real Placement: while agents claim
and release (a release frees the ledger, then deletes the consumer as
Nova does), placement sync loops and doctor --fix's sync loops run.  At
the end Placement's units on the host equal the ledger's, every sync
succeeded, and no released instance holds anything: none was written
back.

PCI_PASSTHROUGH_SOAK_SECONDS sets how long the claims go on (default
20)."""

import os
import random
import threading
import time
import uuid

import pytest
from placement_hosts import agent_host

from pci_passthrough import HostAgent, PortRequest, exception
from pci_passthrough.doctor.placement_audit import audit, observe
from pci_passthrough.ledger import Ledger
from pci_passthrough.placement import requests
from pci_passthrough.placement.host import host_view, ledger_reader, sync_host
from pci_passthrough.placement.sync import Reporter

pytestmark = [pytest.mark.functional, pytest.mark.placement]

SOAK_SECONDS = float(os.environ.get("PCI_PASSTHROUGH_SOAK_SECONDS", "20"))
FLAVOR_CLASSES = {"net1": "CUSTOM_PCI_8086_154C",
                  "grp1": "CUSTOM_PCI_15B3_101E"}


class Claimer(threading.Thread):
    """The scheduler and one compute host's agent: allocate an instance
    in Placement, claim it here, later free it here and delete it."""

    def __init__(self, conf, client, uuids, stop, seed):
        super().__init__(daemon=True)
        self.conf, self.client, self.uuids = conf, client, uuids
        self.stop, self.rand = stop, random.Random(seed)
        self.released: list[str] = []
        self.claimed = 0
        self.errors: list[BaseException] = []

    def run(self):
        try:
            with HostAgent(self.conf) as agent:
                agent.start()
                agent.use_placement_providers(
                    self.conf.pci_passthrough.nodename, self.uuids)
                self._loop(agent)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _loop(self, agent):
        held: list[str] = []
        while not self.stop.is_set():
            if held and (len(held) > 1 or self.rand.random() < 0.5):
                instance = held.pop(self.rand.randrange(len(held)))
                agent.release(instance)
                self.client.delete(f"/allocations/{instance}",
                                   expect=(204, 404))
                self.released.append(instance)
            elif self._claim(agent):
                held.append(self._last)
            time.sleep(self.rand.random() * 0.02)

    def _claim(self, agent) -> bool:
        flavor = self.rand.choice(sorted(FLAVOR_CLASSES))
        rc = FLAVOR_CLASSES[flavor]
        rp = next(u for name, u in self.uuids.items()
                  if name.endswith("_0000:3B:00.0_pcipt" if flavor == "net1"
                                    else "_0000:5E:00.0_pcipt"))
        instance = str(uuid.uuid4())
        resp = self.client.put(f"/allocations/{instance}", {
            "allocations": {rp: {"resources": {rc: 1}}},
            "project_id": "p", "user_id": "u",
            "consumer_generation": None, "consumer_type": "INSTANCE"},
            expect=(204, 409))
        if resp.status == 409:
            return False  # the provider is full
        try:
            agent.claim(instance, [PortRequest(0, flavor=flavor,
                                               needs_netdev=False)],
                        allocation={0: rp})
        except exception.PciPassthroughError:
            # Placement had room the host has not (an instance written
            # back by a heal holds a unit): undo as Nova would.
            self.client.delete(f"/allocations/{instance}",
                               expect=(204, 404))
            return False
        self._last = instance
        self.claimed += 1
        return True


class SyncLoop(threading.Thread):
    """Runs ``step`` until stopped, counting runs and keeping errors."""

    def __init__(self, step, stop):
        super().__init__(daemon=True)
        self.step, self.stop = step, stop
        self.runs = 0
        self.errors: list[BaseException] = []

    def run(self):
        while not self.stop.is_set():
            try:
                self.step()
            except exception.PciPassthroughError as exc:
                self.errors.append(exc)
            self.runs += 1


def doctor_fix_sync(conf, client):
    """What doctor --fix does for Placement: read the ledger, audit, and
    sync from those records, reading the ledger again to heal."""
    view = host_view(conf)
    known = {r.instance_uuid for r in view.records}
    audit(view.tree, view.records,
          observe(client, view.tree.nodename, known,
                  names=[p.name for p in view.tree.providers]))
    Reporter(client).sync(
        view.tree, view.records, requests.flavor_traits(view.flavors),
        requests.flavor_classes(view.flavors), create_root=False,
        ledger=ledger_reader(conf.pci_passthrough.state_path))


def units_on(client, uuids):
    """consumer -> resource class -> units, on the host's providers."""
    out: dict[str, dict[str, int]] = {}
    for rp in uuids.values():
        allocs = client.get(f"/resource_providers/{rp}/allocations").body
        for consumer, alloc in allocs["allocations"].items():
            for rc, n in alloc["resources"].items():
                have = out.setdefault(consumer, {})
                have[rc] = have.get(rc, 0) + n
    return out


def ledger_units(conf):
    out: dict[str, dict[str, int]] = {}
    with Ledger(conf.pci_passthrough.state_path, readonly=True) as ledger:
        for rec in ledger.records():
            rc = FLAVOR_CLASSES[rec.flavor]
            have = out.setdefault(rec.instance_uuid, {})
            have[rc] = have.get(rc, 0) + 1
    return out


def test_syncs_racing_releases_write_no_freed_instance_back(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    uuids = host_view(conf).sync(Reporter(client)).provider_uuids
    stop = threading.Event()
    claimers = [Claimer(conf, client, uuids, stop, seed)
                for seed in range(2)]
    loops = [SyncLoop(lambda: sync_host(conf, client=client), stop),
             SyncLoop(lambda: doctor_fix_sync(conf, client), stop)]
    for thread in claimers + loops:
        thread.start()
    time.sleep(SOAK_SECONDS)
    stop.set()
    for thread in claimers + loops:
        thread.join(timeout=60)
        assert not thread.is_alive()

    assert [e for t in claimers for e in t.errors] == []
    assert [str(e) for t in loops for e in t.errors] == []
    assert all(t.runs > 3 for t in loops), [t.runs for t in loops]
    released = {i for t in claimers for i in t.released}
    assert len(released) > 20, len(released)
    have = units_on(client, uuids)
    assert sorted(released & set(have)) == []
    assert have == ledger_units(conf)
    # Nothing left to heal, and every later sync succeeds.
    assert sync_host(conf, client=client).healed_consumers == []


def test_an_instance_freed_after_the_ledger_was_read_is_not_written(
        tmp_path, client, nodename) -> None:
    conf = agent_host(tmp_path, nodename())
    uuids = host_view(conf).sync(Reporter(client)).provider_uuids
    cx6 = next(u for n, u in uuids.items()
               if n.endswith("_0000:5E:00.0_pcipt"))
    instance = str(uuid.uuid4())
    with HostAgent(conf) as agent:
        agent.start()
        agent.use_placement_providers(conf.pci_passthrough.nodename, uuids)
        client.put(f"/allocations/{instance}", {
            "allocations": {cx6: {"resources": {
                FLAVOR_CLASSES["grp1"]: 1}}},
            "project_id": "p", "user_id": "u",
            "consumer_generation": None, "consumer_type": "INSTANCE"},
            expect=(204,))
        agent.claim(instance, [PortRequest(0, flavor="grp1",
                                           needs_netdev=False)],
                    allocation={0: cx6})
        view = host_view(conf)  # the ledger read while it is held
        agent.release(instance)
        client.delete(f"/allocations/{instance}")
    report = view.sync(Reporter(client))
    assert report.released_meanwhile == [instance]
    assert report.healed_consumers == [] and report.writes == 0
    assert client.get(f"/allocations/{instance}").body == {
        "allocations": {}}
