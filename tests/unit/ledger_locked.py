"""A folder that a child process can read but not write, for the
ledger tests of folders its user cannot write."""

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

NOBODY = 65534


def as_nobody(fn: Callable[..., int], *args: Any) -> int:
    """Run fn(*args) in a forked child without the right to write the
    folder: as uid 65534 when root (root ignores permissions)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = fn(*args)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def locked_folder() -> Iterator[str]:
    """A folder that the child of as_nobody can read but not write, once
    locked (a fixture's body)."""
    folder = tempfile.mkdtemp(prefix="pcipt-ro-")
    os.chmod(folder, 0o755)
    yield folder
    os.chmod(folder, 0o755)
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


def lock(folder: str) -> None:
    """Keep the child of as_nobody from writing ``folder``: root's
    folders are not nobody's already."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
