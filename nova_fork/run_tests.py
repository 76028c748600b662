"""Run nova's SR-IOV functional tests and the fork's own on the fork's tree.

    python nova_fork/run_tests.py --tree TREE [FILTER ...]

Without a filter: nova's nova/tests/functional/libvirt/
test_pci_sriov_servers.py and every module of nova_fork/tests/, with
stestr from the tree (nova's harness needs stestr: pytest breaks its
cleanup). With filters (stestr's regular expressions over test ids),
those tests only.

Fails unless every test selected passed and none was missing: without a
filter, nova's module must contribute NOVA_SRIOV_TESTS passing tests and
each fork test listed must pass; a filter that selects nothing fails.
"""

import argparse
import io
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
#: Where the tests are looked for: nova's libvirt functional tests, which
#: the fork's test modules join (build.py links them there).
TEST_PATH = "./nova/tests/functional/libvirt"
PACKAGE = "nova.tests.functional.libvirt"
NOVA_MODULE = f"{PACKAGE}.test_pci_sriov_servers"
#: Tests of nova 34.0.0's test_pci_sriov_servers, all of which pass.
NOVA_SRIOV_TESTS = 116


def fork_modules() -> list[str]:
    return [f"{PACKAGE}.{path.stem}"
            for path in sorted((HERE / "tests").glob("test_*.py"))]


def stestr(tree: pathlib.Path, *args: str,
           capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stestr", f"--test-path={TEST_PATH}",
         "--top-dir=./", *args],
        cwd=tree, text=True, capture_output=capture)


def listed(tree: pathlib.Path, filters: list[str]) -> list[str]:
    """The test ids the filters select; an import error fails here."""
    proc = stestr(tree, "list", *filters, capture=True)
    if proc.returncode:
        sys.exit(f"stestr list failed:\n{proc.stdout}{proc.stderr}")
    return [line for line in proc.stdout.splitlines()
            if line.startswith("nova.")]


def run_id(tree: pathlib.Path) -> int:
    """The id stestr gives its next run."""
    path = tree / ".stestr" / "next-stream"
    return int(path.read_text()) if path.exists() else 0


def statuses(tree: pathlib.Path) -> dict[str, str]:
    """Each test of the last run and its status (success, fail, skip,
    ...), read from the run's subunit stream."""
    import subunit
    import testtools

    proc = subprocess.run(
        [sys.executable, "-m", "stestr", "last", "--subunit"], cwd=tree,
        capture_output=True, check=True)
    found: dict[str, str] = {}

    def record(test: dict[str, str]) -> None:
        found[test["id"]] = test["status"]

    result = testtools.StreamToDict(record)
    result.startTestRun()
    stream = subunit.ByteStreamToStreamResult(
        io.BytesIO(proc.stdout), non_subunit_name="stdout")
    stream.run(result)
    result.stopTestRun()
    return found


def check(selected: list[str], ran: dict[str, str],
          nova_expected: int | None) -> list[str]:
    """Why the run is not a success; nothing when it is."""
    problems = []
    failed = sorted(t for t, s in ran.items() if s not in ("success",
                                                           "skip"))
    if failed:
        problems.append(f"{len(failed)} tests failed: " + ", ".join(failed))
    missing = sorted(set(selected) - {t for t, s in ran.items()
                                      if s == "success"})
    if missing:
        problems.append(f"{len(missing)} tests selected did not pass: "
                        + ", ".join(missing))
    if nova_expected is not None:
        nova = [t for t, s in ran.items()
                if t.startswith(NOVA_MODULE + ".") and s == "success"]
        if len(nova) < nova_expected:
            problems.append(f"only {len(nova)} of nova's "
                            f"{nova_expected} SR-IOV tests passed")
    if not selected:
        problems.append("the filters select no test")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=pathlib.Path, required=True,
                        help="the fork's tree that build.py made")
    parser.add_argument("filters", nargs="*",
                        help="stestr filters (default: nova's SR-IOV "
                             "module and the fork's test modules)")
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    filters = args.filters or [rf"^{m}\." for m in
                               [NOVA_MODULE, *fork_modules()]]
    nova_expected = None if args.filters else NOVA_SRIOV_TESTS
    if not (tree / ".stestr").is_dir():
        stestr(tree, "init", capture=True).check_returncode()
    selected = listed(tree, filters)
    print(f"{len(selected)} tests selected", flush=True)
    before = run_id(tree)
    started = time.monotonic()
    stestr(tree, "run", *filters)
    elapsed = time.monotonic() - started
    if run_id(tree) != before + 1:
        sys.exit("stestr recorded no run")
    ran = statuses(tree)
    passed = sum(s == "success" for s in ran.values())
    print(f"{passed} of {len(selected)} tests passed in {elapsed:.0f} s",
          flush=True)
    problems = check(selected, ran, nova_expected)
    for problem in problems:
        print(f"nova_fork/run_tests.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
