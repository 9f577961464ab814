"""The project as it was at a git revision: its `envs/` and `lockfiles/` extracted into a temp folder.

Both sides of `envtiers diff` are read by the same loaders: the working tree as it is, the base
revision from `git archive` of those two folders (so nothing in the checkout is touched).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from envtiers.errors import InputError
from envtiers.settings import Project, load_project

REVIEWED = ("envs", "lockfiles", "docker/Dockerfile")  # the Dockerfile names the image's base


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def default_base(root: Path) -> str:
    """The merge base with the default branch (origin's HEAD, else main/master) when on another
    branch; `HEAD` otherwise (then the diff shows the uncommitted changes)."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        raise InputError(f"{root} is not a git repository", fix="run envtiers diff inside a clone, or pass --base")
    candidates = []
    head = _git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD")
    if head.returncode == 0:
        candidates.append(head.stdout.decode().strip())
    candidates += ["origin/main", "main", "origin/master", "master"]
    current = _git(root, "rev-parse", "HEAD").stdout.decode().strip()
    for ref in candidates:
        found = _git(root, "merge-base", ref, "HEAD")
        if found.returncode == 0:
            base = found.stdout.decode().strip()
            return "HEAD" if base == current else base
    return "HEAD"


@contextlib.contextmanager
def project_at(project: Project, revision: str) -> Iterator[Project | None]:
    """`project` as of `revision` (None when the revision has no envs/tiers.toml). Raises InputError
    for a revision git does not know."""
    root = project.root
    resolved = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if resolved.returncode != 0:
        raise InputError(
            f"git does not know the revision {revision!r}", fix="pass --base REV (a commit, tag or branch)"
        )
    commit = resolved.stdout.decode().strip()
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.decode().strip()  # the project inside the repository
    present = [
        folder for folder in REVIEWED if _git(root, "cat-file", "-e", f"{commit}:{prefix}{folder}").returncode == 0
    ]
    with tempfile.TemporaryDirectory(prefix="envtiers-diff-") as tmp:
        if "envs" not in present:
            yield None
            return
        archive = _git(root, "archive", "--format=tar", commit, *(f"{prefix}{f}" for f in present))
        if archive.returncode != 0:
            raise InputError(f"git archive {revision} failed: {archive.stderr.decode().strip()[:200]}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            base: Project | None = load_project(Path(tmp) / prefix, cache_dir=project.cache_dir)
        except InputError:
            base = None  # settings this envtiers cannot read: nothing to compare against
        yield base
