"""The door every operation of one host's agent goes through.

Operations are counted so that close() can wait for those in progress
and refuse later ones; operations on one instance are serialised, while
different instances proceed in parallel (the tracker has its own lock).
"""

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pci_passthrough import exception
from pci_passthrough.model.instance_id import canonical_uuid


@dataclasses.dataclass(slots=True)
class _InstanceLock:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: Operations holding or waiting for the lock.
    users: int = 0


class OperationGate:
    """Admits, counts and serialises the operations of one agent.

    HostAgent makes its own unless given one (its ``gate`` parameter),
    which lets a caller watch busy_instances().
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._instances: dict[str, _InstanceLock] = {}
        self._active = 0
        self._closed = False

    @contextmanager
    def open(self, method: str) -> Iterator[None]:
        """Count an operation in progress.

        :raises AgentClosed: close() was called; ``method`` names the
            operation refused.
        """
        with self._lock:
            if self._closed:
                raise exception.AgentClosed(method=method)
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    @contextmanager
    def instance(self, method: str, instance_uuid: str) -> Iterator[None]:
        """An operation on one instance: counted as open() counts it,
        and run alone among the operations on that instance.

        :raises InvalidInstanceId: ``instance_uuid`` is not a UUID.
        """
        with self.open(method):
            canonical_uuid(instance_uuid)
            # A lock lives only while an operation holds or waits for
            # it, so ids seen once cost nothing afterwards.
            with self._lock:
                entry = self._instances.get(instance_uuid)
                if entry is None:
                    entry = self._instances[instance_uuid] = \
                        _InstanceLock()
                entry.users += 1
            try:
                with entry.lock:
                    yield
            finally:
                with self._lock:
                    entry.users -= 1
                    if not entry.users:
                        del self._instances[instance_uuid]

    def close(self) -> bool:
        """Refuse every later operation, then wait for those in
        progress; False when closed already (nothing is waited for)."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            while self._active:
                self._idle.wait()
            return True

    def busy_instances(self) -> frozenset[str]:
        """The instances whose lock an operation holds or waits for."""
        with self._lock:
            return frozenset(self._instances)
