"""doctor --fix, the command, run again and again beside an agent that
claims, plugs and releases on the same real libvirtd and ledger: a
network deleted between doctor's listing and its inspection is not
there, so every run exits 0 or 1 (findings), never 2 (the check
failed)."""

import subprocess
import sys
import threading
import uuid

import pytest
from agent_on_libvirtd import FLAVORS, LAYOUT, SPECS
from conf_files import write_host_conf

from pci_passthrough import HostAgent, PortRequest
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.simulated_host import host_conf

pytestmark = pytest.mark.functional

RUNS = 30


def test_doctor_fix_beside_a_busy_agent_never_fails(host_a, tmp_path):
    st.build_tree(tmp_path / "sys", LAYOUT)
    conf = host_conf(tmp_path, device_specs=SPECS, flavors=FLAVORS,
                     libvirt_uri=host_a.uri)
    conf_file = write_host_conf(
        tmp_path / "pci.conf", sysfs_root=tmp_path / "sys",
        state_path=tmp_path / "claims.sqlite3", device_specs=SPECS,
        flavors=FLAVORS, libvirt_uri=host_a.uri)
    agent = HostAgent(conf)
    agent.start()
    stop = threading.Event()
    cycles: list[int] = []
    failures: list[BaseException] = []

    def busy() -> None:
        # Short-lived instances: their networks come and go while
        # doctor lists and inspects them.
        try:
            while not stop.is_set():
                inst = str(uuid.uuid4())
                agent.claim(inst, [PortRequest(0, flavor="net1"),
                                   PortRequest(1, flavor="net1")])
                agent.plug(inst)
                agent.release(inst)
                cycles.append(1)
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    worker = threading.Thread(target=busy)
    worker.start()
    codes = []
    try:
        for _ in range(RUNS):
            proc = subprocess.run(
                [sys.executable, "-m", "pci_passthrough.cli.main",
                 "--config-file", str(conf_file), "doctor", "--fix",
                 "--skip-placement"],
                capture_output=True, text=True, timeout=120)
            codes.append(proc.returncode)
            assert proc.returncode in (0, 1), proc.stderr
    finally:
        stop.set()
        worker.join(timeout=120)
        agent.close()
    assert not failures, failures
    assert len(codes) == RUNS
    # The agent was busy throughout, not idle beside doctor.
    assert len(cycles) >= RUNS
