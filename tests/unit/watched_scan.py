"""The scanner run the way the hostile-tree tests need it: under a
watchdog (a hang fails the test instead of blocking the run) and with
every file it opens and every folder it lists recorded by an audit hook,
so a test can check nothing outside the root was touched.

Shared by test_sysfs_hostile.py and test_sysfs_fuzz.py.  An audit hook
cannot be removed once added: importing this module adds the one hook
for the whole process, which records only while a scan here runs and
only the scanner's own calls."""

import os
import pathlib
import sys
import threading

import pytest

from pci_passthrough.discovery import sysfs_scan
from pci_passthrough.model.device import ScanResult

# One list per scan in progress; the hook appends to the last.
_recording: list[list[str]] = []
# The scanner is every module of sysfs_scan's package.
_SCANNER = sysfs_scan.__name__.rpartition(".")[0] + "."


def _audit(event: str, args: tuple[object, ...]) -> None:
    # os.open raises "open", os.scandir and os.listdir their own events;
    # lstat, readlink and realpath raise none.  Only the scanner's own
    # calls count (not, say, logging reading a source file).
    if (_recording and event in ("open", "os.scandir", "os.listdir")
            and isinstance(args[0], (str, bytes))
            and str(sys._getframe(1).f_globals.get("__name__", ""))
            .startswith(_SCANNER)):
        _recording[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def scan_watched(root: pathlib.Path, seconds: float
                 ) -> tuple[ScanResult, list[str]]:
    """Scan ``root`` in a thread given ``seconds`` to return; the result
    and every path the scanner opened or listed.  A scan still running
    then fails the test; an exception it raised is raised here."""
    box: dict[str, object] = {}
    accesses: list[str] = []

    def run() -> None:
        _recording.append(accesses)
        try:
            box["result"] = sysfs_scan.scan(root)
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc
        finally:
            _recording.remove(accesses)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"the scan of {root} did not return within {seconds} "
                    f"s: it blocks")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    result = box["result"]
    assert isinstance(result, ScanResult)
    return result, accesses


def outside_root(root: pathlib.Path, accesses: list[str]) -> list[str]:
    """The paths in ``accesses`` outside ``root``, judged by where each
    leads now, links and all: a path that reads as inside but goes
    through a link out of the tree is outside."""
    real = os.path.realpath(root)
    return [p for p in accesses
            if not os.path.realpath(p).startswith(real + "/")]


def opened(root: pathlib.Path) -> list[str]:
    """Every path a scan of ``root`` opens or lists (no watchdog)."""
    accesses: list[str] = []
    _recording.append(accesses)
    try:
        sysfs_scan.scan(root)
    finally:
        _recording.remove(accesses)
    return accesses
