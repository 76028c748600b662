"""Build the nova-compute fork: nova's sdist with nova_fork/patches.

    python nova_fork/build.py [--work DIR] [--force] [--install]
        Fetch nova's sdist (or reuse the one cached in .nova-fork/),
        check its sha256, unpack it to DIR/nova-<version> (DIR defaults
        to .nova-fork/) and apply the patches that nova_fork/patches/series
        lists, in order. The tree is a git repository: its first commit is
        the pristine sdist, then one commit per patch. The modules in
        nova_fork/tests/ are linked into nova/tests/functional/libvirt/
        (ignored by git, so never part of a patch). A tree that is already
        built from the same series is reused. --install installs the tree
        into the running interpreter's environment (pip install -e) when
        it is not installed there yet.

    python nova_fork/build.py export [--work DIR]
        Write every commit after the pristine one back as a patch:
        nova_fork/patches/NNNN-<name>.patch (numbered by position) and
        the series. The commit message becomes the patch's header.

To change the fork: build, edit the tree, commit (a new commit is a new
patch; ``git commit --fixup`` and ``git rebase -i --autosquash`` change
an earlier one), then export and commit the patches in this repository.
A rebuild refuses to discard a tree with uncommitted changes or commits
not exported (--force discards them).

Only the standard library is used, plus git, and pip to fetch the sdist.
"""

import argparse
import dataclasses
import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

NOVA_VERSION = "34.0.0"
#: sha256 of nova-34.0.0.tar.gz as PyPI serves it.
SDIST_SHA256 = (
    "919eef77cda4ce0cc4746a5853b5d9341ebd0ae37bc8b1939eb77d17727c00df")

HERE = pathlib.Path(__file__).resolve().parent
PROJECT = HERE.parent
PATCHES = HERE / "patches"
SERIES = PATCHES / "series"
TESTS = HERE / "tests"
CACHE = PROJECT / ".nova-fork"
#: Where the fork's own test modules go in nova's tree.
TEST_DIR = pathlib.Path("nova/tests/functional/libvirt")
#: Written into the tree's .git: what it was built from.
STAMP = "nova-fork-build.json"
#: What running and installing the tree writes into it, which is no
#: one's work: git ignores it. The sdist ships the files pbr rewrites as
#: it installs the tree; git ignores their changes (skip-worktree).
BUILD_OUTPUT = ("/.stestr/", "__pycache__/", "/build/", "/.eggs/",
                "/nova.egg-info/")
REWRITTEN = ("nova.egg-info", "AUTHORS", "ChangeLog")
#: Ends each commit message made from a patch: the patch's name.
TRAILER = "Fork-Patch: "
PRISTINE = f"nova {NOVA_VERSION} sdist"
_GIT_ID = ("-c", "user.name=nova-fork", "-c", "user.email=nova-fork@localhost")


class BuildError(Exception):
    """The fork cannot be built or exported; the message says why."""


@dataclasses.dataclass(frozen=True)
class Patch:
    name: str
    path: pathlib.Path

    def header(self) -> str:
        """The text before the diff: the patch's description."""
        text = self.path.read_text()
        start = re.search(r"^diff --git ", text, re.MULTILINE)
        return (text[:start.start()] if start else text).strip()


def series() -> list[Patch]:
    """The patches the series lists, in order (quilt's format: one name
    a line, '#' starts a comment)."""
    patches = []
    for line in SERIES.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        path = PATCHES / name
        if not path.is_file():
            raise BuildError(f"{SERIES} lists {name}, which does not exist")
        patches.append(Patch(name, path))
    return patches


def series_digest(patches: list[Patch]) -> str:
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.name.encode() + b"\0")
        digest.update(patch.path.read_bytes() + b"\0")
    return digest.hexdigest()


def git(tree: pathlib.Path, *args: str) -> str:
    proc = subprocess.run(["git", *_GIT_ID, *args], cwd=tree, text=True,
                          capture_output=True)
    if proc.returncode:
        raise BuildError(f"git {' '.join(args)} failed in {tree}:\n"
                         f"{proc.stderr.strip()}")
    return proc.stdout


def fetch_sdist() -> pathlib.Path:
    """The sdist, downloaded once into .nova-fork/, checked each time."""
    sdist = CACHE / f"nova-{NOVA_VERSION}.tar.gz"
    if not sdist.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"Downloading nova {NOVA_VERSION}'s sdist into {CACHE}",
              flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
             "--no-deps", f"nova=={NOVA_VERSION}", "--dest", str(CACHE)])
        if proc.returncode or not sdist.exists():
            raise BuildError(f"pip could not download nova {NOVA_VERSION}'s "
                             f"sdist into {CACHE}")
    actual = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if actual != SDIST_SHA256:
        raise BuildError(f"{sdist} has sha256 {actual}, expected "
                         f"{SDIST_SHA256}: remove it to download it again")
    return sdist


def read_stamp(tree: pathlib.Path) -> dict[str, str] | None:
    stamp = tree / ".git" / STAMP
    if not stamp.exists():
        return None
    data: dict[str, str] = json.loads(stamp.read_text())
    return data


def write_stamp(tree: pathlib.Path, digest: str) -> None:
    head = git(tree, "rev-parse", "HEAD").strip()
    (tree / ".git" / STAMP).write_text(
        json.dumps({"series": digest, "head": head}) + "\n")


def changes(tree: pathlib.Path) -> str:
    return git(tree, "status", "--porcelain").strip()


def unsaved_work(tree: pathlib.Path) -> str | None:
    """What a rebuild of ``tree`` would lose, or None."""
    stamp = read_stamp(tree)
    if stamp is None:
        return "it was not made by this script"
    if changes(tree):
        return "it has uncommitted changes"
    if git(tree, "rev-parse", "HEAD").strip() != stamp["head"]:
        return "it has commits that were not exported"
    return None


def unpack(sdist: pathlib.Path, work: pathlib.Path) -> pathlib.Path:
    tree = work / f"nova-{NOVA_VERSION}"
    if tree.exists():
        shutil.rmtree(tree)
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    if not (tree / "setup.cfg").is_file():
        raise BuildError(f"{sdist} did not unpack to {tree}")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "--no-verify", "-m", PRISTINE)
    rewritten = git(tree, "ls-files", "--", *REWRITTEN).split()
    git(tree, "update-index", "--skip-worktree", *rewritten)
    return tree


def apply(tree: pathlib.Path, patches: list[Patch]) -> None:
    """Apply and commit each patch. The stamp follows every commit, so
    that a tree whose build stopped at a patch that does not apply can be
    rebuilt, unless someone committed to it since."""
    write_stamp(tree, "")
    for done, patch in enumerate(patches):
        proc = subprocess.run(
            ["git", "apply", "--index", "--whitespace=nowarn",
             str(patch.path)], cwd=tree, text=True, capture_output=True)
        if proc.returncode:
            after = (f"after {', '.join(p.name for p in patches[:done])}"
                     if done else "as the first patch")
            raise BuildError(
                f"PATCH DOES NOT APPLY: {patch.path.relative_to(PROJECT)} "
                f"on nova {NOVA_VERSION} {after}:\n{proc.stderr.strip()}")
        message = f"{patch.header() or patch.name}\n\n{TRAILER}{patch.name}"
        git(tree, "commit", "-q", "--no-verify", "-m", message)
        write_stamp(tree, "")


def link_tests(tree: pathlib.Path) -> list[str]:
    """Link nova_fork/tests/test_*.py into nova's functional tests."""
    exclude = tree / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    linked = []
    for stale in (tree / TEST_DIR).glob("test_*.py"):
        # A module removed from nova_fork/tests leaves a dangling link.
        if stale.is_symlink() and not stale.exists():
            stale.unlink()
    for source in sorted(TESTS.glob("test_*.py")):
        target = tree / TEST_DIR / source.name
        entry = f"/{TEST_DIR / source.name}"
        if target.is_symlink():
            target.unlink()
        elif target.exists():
            raise BuildError(f"{source.name} would replace nova's own "
                             f"{target}: rename it")
        target.symlink_to(source)
        if entry not in lines:
            lines.append(entry)
        linked.append(source.stem)
    lines += [entry for entry in BUILD_OUTPUT if entry not in lines]
    exclude.write_text("\n".join(lines) + "\n")
    return linked


def build(work: pathlib.Path, force: bool) -> pathlib.Path:
    patches = series()
    digest = series_digest(patches)
    tree = work / f"nova-{NOVA_VERSION}"
    if tree.exists():
        lost = unsaved_work(tree)
        stamp = read_stamp(tree)
        if lost is None and stamp and stamp["series"] == digest:
            print(f"{tree} is built from the current series", flush=True)
            link_tests(tree)
            return tree
        if lost is not None and not force:
            raise BuildError(f"not rebuilding {tree}: {lost} (commit and "
                             f"export it, or pass --force to discard it)")
    tree = unpack(fetch_sdist(), work)
    apply(tree, patches)
    write_stamp(tree, digest)
    linked = link_tests(tree)
    print(f"Built {tree}: nova {NOVA_VERSION} with {len(patches)} patches; "
          f"fork tests linked: {', '.join(linked) or 'none'}", flush=True)
    return tree


def install(tree: pathlib.Path) -> None:
    """pip install -e the tree into this interpreter's environment, unless
    it is there already with the same packaging files."""
    digest = hashlib.sha256(str(tree).encode())
    for name in ("pyproject.toml", "setup.cfg", "requirements.txt"):
        digest.update((tree / name).read_bytes())
    stamp = pathlib.Path(sys.prefix) / "nova-fork-installed"
    if stamp.exists() and stamp.read_text().strip() == digest.hexdigest():
        print(f"nova is installed from {tree}", flush=True)
        return
    subprocess.run([sys.executable, "-m", "pip", "install", "-e", str(tree)],
                   check=True)
    stamp.write_text(digest.hexdigest() + "\n")


def export(work: pathlib.Path) -> None:
    """Write the tree's commits back to nova_fork/patches/ and series."""
    tree = work / f"nova-{NOVA_VERSION}"
    if not (tree / ".git").is_dir():
        raise BuildError(f"no tree to export at {tree}: build it first")
    if changes(tree):
        raise BuildError(f"{tree} has uncommitted changes: commit them")
    log = git(tree, "log", "--reverse", "--format=%H", "HEAD")
    commits = log.split()
    if git(tree, "log", "-1", "--format=%s", commits[0]).strip() \
            != PRISTINE:
        raise BuildError(f"the first commit of {tree} is not {PRISTINE}")
    names = []
    for number, commit in enumerate(commits[1:], start=1):
        message = git(tree, "log", "-1", "--format=%B", commit).strip()
        header, _, old = message.partition(f"\n\n{TRAILER}")
        stem = re.sub(r"^\d+-", "", old.strip().removesuffix(".patch")) \
            or _slug(header.splitlines()[0])
        diff = git(tree, "diff", "--no-color", "--no-ext-diff",
                   "--no-renames", "--src-prefix=a/", "--dst-prefix=b/",
                   f"{commit}~1", commit)
        name = f"{number:04d}-{stem}.patch"
        (PATCHES / name).write_text(f"{header.strip()}\n\n{diff}")
        names.append(name)
    for stale in PATCHES.glob("[0-9][0-9][0-9][0-9]-*.patch"):
        if stale.name not in names:
            stale.unlink()
    SERIES.write_text("".join(f"{name}\n" for name in names))
    write_stamp(tree, series_digest(series()))
    print(f"Exported {len(names)} patches to {PATCHES}", flush=True)


def _slug(subject: str, limit: int = 50) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")
    return slug if len(slug) <= limit else \
        slug[:limit + 1].rsplit("-", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build (or export) the nova-compute fork's tree.")
    parser.add_argument("command", nargs="?", default="build",
                        choices=("build", "export"))
    parser.add_argument("--work", type=pathlib.Path, default=CACHE,
                        help="folder holding the tree (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even over unsaved work in the tree")
    parser.add_argument("--install", action="store_true",
                        help="pip install -e the tree into this environment")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    try:
        if args.command == "export":
            export(work)
            return 0
        tree = build(work, args.force)
        if args.install:
            install(tree)
    except BuildError as exc:
        print(f"nova_fork/build.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
