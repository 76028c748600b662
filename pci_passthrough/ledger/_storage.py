"""Storage faults under a ledger: a full disk, a read-only file system, a
permission.  Each is told apart from a damaged file and named in an
error whose advice loses nothing.

A ledger that cannot be written for want of space, of a writable mount
or of a permission still holds every claim it held: the advice is to
free space, to remount or to fix ownership, never to move it away, which
would hand out the devices it holds again.

SQLite does not say which system call failed.  SQLITE_FULL is a full
disk; but SQLITE_IOERR (growing the -shm file on a full disk),
SQLITE_CANTOPEN and SQLITE_READONLY are what all three faults may give.
For those the file system is asked: mounted read-only, not writable by
this user, or out of space or inodes.
"""

import enum
import errno
import os
import pwd
import re
import sqlite3
from collections.abc import Iterator

from pci_passthrough import exception


class Fault(enum.Enum):
    """A storage fault."""

    DISK_FULL = "disk full"
    READ_ONLY = "read-only file system"
    PERMISSION = "permission denied"


_ERRORS: dict[Fault, type[exception.LedgerError]] = {
    Fault.DISK_FULL: exception.LedgerDiskFull,
    Fault.READ_ONLY: exception.LedgerReadOnly,
    Fault.PERMISSION: exception.LedgerPermissionDenied,
}

_ERRNOS = {
    errno.ENOSPC: Fault.DISK_FULL,
    errno.EDQUOT: Fault.DISK_FULL,
    errno.EROFS: Fault.READ_ONLY,
    errno.EACCES: Fault.PERMISSION,
    errno.EPERM: Fault.PERMISSION,
}
# SQLite's primary result codes (an extended code's low byte).
_SQLITE_FULL = 13
_SQLITE_AMBIGUOUS = frozenset({
    3,   # SQLITE_PERM
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    14,  # SQLITE_CANTOPEN
})
#: Less free space than this, once a write has failed, is a full disk:
#: a ledger writes a few pages at a time, and its -shm file is 32 KiB.
LOW_SPACE = 1 << 20


def storage_error(path: str, doing: str, exc: BaseException,
                  kept: str) -> exception.LedgerError | None:
    """The error naming the storage fault behind ``exc``, raised while
    ``doing`` (what failed) with ``kept`` (what the ledger still holds);
    None when ``exc`` is not a storage fault."""
    found = diagnose(path, exc)
    if found is None:
        return None
    fault, cause = found
    return _error(fault, path, f"{doing} ({cause})", kept)


def unwritable_error(path: str, doing: str,
                     kept: str) -> exception.LedgerError | None:
    """The error naming what keeps this user from writing ``path``, an
    existing file; None when nothing does."""
    fault = _probe(path)
    if fault is None or fault is Fault.DISK_FULL:
        return None
    return _error(fault, path, doing, kept)


def _error(fault: Fault, path: str, what: str,
           kept: str) -> exception.LedgerError:
    folder = os.path.dirname(os.path.abspath(path))
    if fault is Fault.DISK_FULL:
        advice = (f"Free space on the file system of {folder} "
                  f"({_free(folder)} as the write failed) and retry; "
                  f"nothing needs repair")
    elif fault is Fault.READ_ONLY:
        mount = _mount_point(folder)
        advice = (f"{mount} is mounted read-only: remount it read-write "
                  f"(mount -o remount,rw {mount}) and retry")
    else:
        advice = (f"The {_user()} must be able to read and write the "
                  f"ledger and to write its folder {folder}, where SQLite "
                  f"creates its -wal and -shm files: fix their ownership "
                  f"or mode, or run this as the user that runs the agent")
    return _ERRORS[fault](path=path, reason=f"{what}; {kept}. {advice}")


def diagnose(path: str, exc: BaseException
             ) -> tuple[Fault, BaseException] | None:
    """The storage fault behind ``exc`` (or an error it was raised while
    handling) and the error that shows it; None when there is none."""
    ambiguous: BaseException | None = None
    for err in _chain(exc):
        if isinstance(err, OSError) and err.errno in _ERRNOS:
            return _ERRNOS[err.errno], err
        code = getattr(err, "sqlite_errorcode", None)
        if not isinstance(err, sqlite3.Error) or code is None:
            continue
        if code & 0xFF == _SQLITE_FULL:
            return Fault.DISK_FULL, err
        if code & 0xFF in _SQLITE_AMBIGUOUS and ambiguous is None:
            ambiguous = err
    if ambiguous is None:
        return None
    fault = _probe(path)
    return None if fault is None else (fault, ambiguous)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    # A failed ROLLBACK ("no transaction is active": SQLite rolled back
    # by itself) hides the error it was handling.
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _probe(path: str) -> Fault | None:
    """What the file system says of a failed write of ``path``."""
    folder = _existing(os.path.dirname(os.path.abspath(path)))
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return Fault.READ_ONLY
    files = [name for name in (path, path + "-wal", path + "-shm")
             if os.path.lexists(name)]
    if not _access(folder, os.W_OK | os.X_OK) or not all(
            _access(name, os.R_OK | os.W_OK) for name in files):
        return Fault.PERMISSION
    if _free_bytes(st) < LOW_SPACE or (st.f_files and not st.f_favail):
        return Fault.DISK_FULL
    return None


def _access(path: str, mode: int) -> bool:
    return os.access(path, mode, effective_ids=True)


def _existing(folder: str) -> str:
    # A folder that is still to be created lives on its parent's file
    # system.
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def _free_bytes(st: os.statvfs_result) -> int:
    # Root may write the blocks a file system reserves for it.
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def _free(folder: str) -> str:
    try:
        st = os.statvfs(_existing(folder))
    except OSError as exc:
        return f"free space unknown: {exc.strerror}"
    inodes = ", no free inodes" if st.f_files and not st.f_favail else ""
    return f"{_free_bytes(st) // 1024} KiB free{inodes}"


def _mount_point(folder: str) -> str:
    """The mount ``folder`` is on: the longest mount point above it
    (a bind mount shares its device with the file system it shows)."""
    folder = os.path.realpath(_existing(folder))
    best = "/"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                # Spaces and the like in a mount point are octal escapes.
                point = re.sub(r"\\([0-7]{3})",
                               lambda m: chr(int(m[1], 8)),
                               line.split()[1])
                if len(point) > len(best) and (
                        folder == point or
                        folder.startswith(point.rstrip("/") + "/")):
                    best = point
    except (OSError, IndexError):
        return folder
    return best


def _user() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
