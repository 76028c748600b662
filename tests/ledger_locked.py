"""A folder that a child process can read but not write, for the
ledger tests of folders and files its user cannot write (both tiers),
and what that child checks."""

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from pci_passthrough import exception
from pci_passthrough.ledger import Ledger

#: Advice that would lose claims: no storage fault may give it.
LOSING_ADVICE = "move it away"

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


def refused_for_permission(path: str, *phrases: str) -> int:
    """In the child: 0 when opening the ledger at ``path`` is refused
    for permission, naming it, with every phrase and no losing advice;
    else a code (and the message printed)."""
    try:
        Ledger(path).close()
    except exception.LedgerPermissionDenied as exc:
        text = str(exc)
        if path in text and LOSING_ADVICE not in text and all(
                phrase in text for phrase in phrases):
            return 0
        print(text)
        return 3
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
        return 4
    return 2


def reads(path: str, count: int) -> int:
    """In the child: 0 when the ledger still reads ``count`` claims."""
    with Ledger(path, readonly=True) as ledger:
        return 0 if len(ledger.records()) == count else 2
