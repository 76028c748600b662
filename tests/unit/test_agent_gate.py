"""OperationGate on its own: close() waits for what is in progress and
refuses what comes after; one instance's operations run one at a time,
other instances' alongside, and no lock outlives its operations."""

import threading

import pytest

from pci_passthrough import exception
from pci_passthrough.agent import OperationGate

A = "4f1a2b3c-0000-4000-8000-00000000000a"
B = "4f1a2b3c-0000-4000-8000-00000000000b"


def in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_close_waits_for_the_operation_in_progress_then_refuses():
    gate = OperationGate()
    entered, leave = threading.Event(), threading.Event()

    def operation():
        with gate.open("plug"):
            entered.set()
            leave.wait(10)

    worker = in_thread(operation)
    assert entered.wait(10)
    closing = in_thread(gate.close)
    closing.join(0.2)
    assert closing.is_alive()  # waiting for the plug
    leave.set()
    closing.join(10)
    worker.join(10)
    assert not closing.is_alive()
    with pytest.raises(exception.AgentClosed,
                       match=r"HostAgent\.claim: the agent is closed"), \
            gate.instance("claim", A):
        pass
    assert gate.close() is False


def test_one_instance_waits_another_proceeds():
    gate = OperationGate()
    holding, release = threading.Event(), threading.Event()
    order = []

    def hold_a():
        with gate.instance("plug", A):
            holding.set()
            release.wait(10)
            order.append("first A")

    def second_a():
        with gate.instance("release", A):
            order.append("second A")

    first = in_thread(hold_a)
    assert holding.wait(10)
    second = in_thread(second_a)
    with gate.instance("claim", B):
        order.append("B")
    assert gate.busy_instances() == {A}
    release.set()
    first.join(10)
    second.join(10)
    assert order == ["B", "first A", "second A"]
    assert gate.busy_instances() == frozenset()


def test_an_instance_id_that_is_no_uuid_takes_no_lock():
    gate = OperationGate()
    with pytest.raises(exception.InvalidInstanceId), \
            gate.instance("claim", "not-a-uuid"):
        pass
    assert gate.busy_instances() == frozenset()
