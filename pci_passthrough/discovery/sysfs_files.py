"""One file or link of a sysfs tree, read as hostile input.

A file is read only once its directory entry (or an lstat) says it is a
regular file, opened with O_NONBLOCK|O_NOFOLLOW and read once, at most
MAX_READ bytes: a FIFO, socket or device node is never opened, a link
never followed, and nothing blocks.  A link is read as text and never
followed.  Paths in messages go through :func:`printable`.
"""

import errno
import os
import re
import stat
import sys

from pci_passthrough.discovery import _values as values

# No value the scanner reads is longer than 65 bytes (a phys_switch_id),
# so a file is read once, and one longer than this fails to parse.
MAX_READ = 128
#: The flags every file is opened with.
O_READ = (os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
          | os.O_CLOEXEC)
_DRIVER = re.compile(r"[!-.0-~]{1,64}\Z")


class LinkProblem(Exception):
    """A link that is not what the kernel writes: ``reason`` says what
    was found and what was expected."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def shown(data: bytes) -> str:
    """Bytes read from a file, as a message quotes them (cut at 40)."""
    return repr(data[:40]) + ("..." if len(data) > 40 else "")


def printable(path: str) -> str:
    """A path as it can be logged and printed: names that are not UTF-8
    (surrogate escapes) or not printable are shown with escapes."""
    if path.isascii() and path.isprintable():
        return path
    raw = path.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "backslashreplace")
    return text if text.isprintable() else ascii(text)[1:-1]


def kind(mode: int) -> str:
    """The file type of ``mode``, as a message names it ("a FIFO")."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "of an unknown file type"


def entry_kind(entry: os.DirEntry[str]) -> str:
    """What a directory entry is, or that it is gone."""
    try:
        return kind(entry.stat(follow_symlinks=False).st_mode)
    except OSError as exc:
        return f"gone ({exc.strerror})"


def path_kind(path: str) -> str:
    """What ``path`` is (not following a link), or that it is gone."""
    try:
        return kind(os.lstat(path).st_mode)
    except OSError as exc:
        return f"gone ({exc.strerror})"


def read(path: str) -> bytes:
    """One bounded read of a file already known to be a regular file."""
    fd = os.open(path, O_READ)
    try:
        return os.read(fd, MAX_READ)
    finally:
        os.close(fd)


def link_text(path: str, expected: str) -> str | None:
    """A link's target as text, never followed; None when there is no
    link.

    :raises LinkProblem: the entry is not a link (``expected`` says what
        it should have linked to).
    """
    try:
        return os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = ("not a symbolic link" if exc.errno == errno.EINVAL
                  else f"cannot be read ({exc.strerror})")
        raise LinkProblem(path, f"{reason}; expected a link to "
                                f"{expected}") from None


def driver_name(path: str, prefix: str,
                cache: dict[str, str]) -> str | None:
    """The driver's name from a link ``prefix<name>``; ``cache`` maps the
    link texts already seen to their names.

    :raises LinkProblem: not a link of that form.
    """
    text = link_text(path, prefix + "<driver name>")
    if text is None:
        return None
    name = cache.get(text)
    if name is None:
        name = text[len(prefix):] if text.startswith(prefix) else ""
        if not _DRIVER.match(name):
            raise LinkProblem(path, f"-> {text!r}; expected {prefix}<driver"
                                    f" name>, the name 1 to 64 printable "
                                    f"ASCII characters; not followed")
        cache[text] = name = sys.intern(name)
    return name


def iommu_group(path: str, prefix: str) -> int | None:
    """The group number from a link ``prefix<number>``.

    :raises LinkProblem: not a link of that form.
    """
    text = link_text(path, prefix + "<group number>")
    if text is None:
        return None
    group = (values.canonical_index(text[len(prefix):])
             if text.startswith(prefix) else None)
    if group is None or group > 0x7FFFFFFF:
        raise LinkProblem(path, f"-> {text!r}; expected {prefix}<group "
                                f"number>, the number 0-2147483647 in "
                                f"decimal; not followed")
    return group
