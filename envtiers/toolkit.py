"""Where the running envtiers lives, and the folder a task puts on its PYTHONPATH to import it.

A step's process runs the environment built from the project's lock, which does not contain
envtiers. It still needs the toolkit and its Metaflow extension (the task is started with
`--environment=envtiers-<tier>`). Adding the folder envtiers was imported from to PYTHONPATH is
right for a source checkout, but for an installed wheel that folder is the launcher's
site-packages: every package of the launcher (its Metaflow, requests, ...) would shadow the
locked ones. `task_path` therefore builds a folder holding only the two packages, as symlinks.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import envtiers

# The toolkit's importable parts, relative to the folder they are installed in.
PARTS = (Path("envtiers"), Path("metaflow_extensions") / "envtiers")


def installed_root() -> Path:
    """The folder holding the `envtiers` package (a checkout's root, or site-packages)."""
    return Path(envtiers.__file__).resolve().parent.parent


def part_files(root: Path | None = None) -> list[tuple[Path, str]]:
    """Every source file of the toolkit as (absolute path, path relative to its root): what a
    code package must carry so a remote task can run envtiers."""
    base = root or installed_root()
    files = []
    for part in PARTS:
        for path in sorted((base / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((path, path.relative_to(base).as_posix()))
    return files


def task_path(cache_dir: Path) -> Path:
    """A folder with only envtiers and metaflow_extensions/envtiers in it, for a task's PYTHONPATH.

    Made once per installed location under `cache_dir` (atomically: a half-made folder is never
    used)."""
    root = installed_root()
    key = hashlib.sha256(f"{envtiers.__version__}:{root}".encode()).hexdigest()[:16]
    target = cache_dir / "toolkit" / key
    if all((target / part).exists() for part in PARTS):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    for part in PARTS:
        (staging / part).parent.mkdir(parents=True, exist_ok=True)
        (staging / part).symlink_to(root / part, target_is_directory=True)
    try:
        os.rename(staging, target)
    except OSError:  # another launcher made it first: theirs is identical
        for part in reversed(PARTS):
            (staging / part).unlink()
        for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), reverse=True):
            folder.rmdir()
        staging.rmdir()
    return target
