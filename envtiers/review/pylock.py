"""`envtiers export --format pylock --platform P`: the pip lock as PEP 751's `pylock.<platform>.toml`.

PEP 751 (https://packaging.python.org/en/latest/specifications/pylock-toml/) is the lock format pip
(`pip install -r pylock.toml`) and uv (`uv pip sync pylock.toml`) read. A pylock names one file per
package; our pip lock names every file of a version, so each package gets the exact wheel that
`platform` installs (chosen as an installer would: the best-ranked tag among the locked hashes,
read from the index), with its URL, sha256 and size. The file is rendered by a pure function, then
written atomically; `[tool.envtiers]` records which lock body it was made from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envtiers import __version__
from envtiers.errors import InputError, ResolutionError
from envtiers.fsutil import atomic_write_text
from envtiers.platforms import get_platform
from envtiers.review.locked import LockedSet, load_locked
from envtiers.review.sizes import FileCatalog, LockedFile
from envtiers.settings import Project

LOCK_VERSION = "1.0"
CREATED_BY = "envtiers"


def pylock_name(platform: str) -> str:
    return f"pylock.{platform}.toml"


def render(
    *, locked: LockedSet, wheels: dict[str, LockedFile | None], python: str, index_url: str, body_sha256: str
) -> str:
    """The TOML text of the pylock (pure). Raises ResolutionError for a package without a wheel."""
    import tomli_w

    target = get_platform(locked.platform)
    packages: list[dict[str, Any]] = []
    for package in sorted(locked.packages, key=lambda p: p.name):
        wheel = wheels.get(package.name)
        if wheel is None:
            raise ResolutionError(
                f"{package.name}=={package.version}: the index has none of its locked files for {locked.platform}",
                fix="run `make lock` against the index you export from (--index-url / [pip] index_url)",
            )
        entry: dict[str, Any] = {"name": package.name, "version": package.version, "index": index_url}
        file: dict[str, Any] = {"name": wheel.filename, "url": wheel.url}
        if wheel.size is not None:
            file["size"] = wheel.size
        file["hashes"] = {"sha256": wheel.sha256}
        entry["wheels"] = [file]
        packages.append(entry)
    document: dict[str, Any] = {
        "lock-version": LOCK_VERSION,
        "environments": [
            f"sys_platform == '{target.sys_platform}' and platform_machine == '{target.platform_machine}'"
        ],
        "requires-python": f"=={python}.*",
        "created-by": CREATED_BY,
        "packages": packages,
        "tool": {
            "envtiers": {
                "format-version": 1,
                "version": __version__,
                "lock": locked.path,
                "lock-body-sha256": body_sha256,
            }
        },
    }
    return tomli_w.dumps(document)


def export_pylock(project: Project, *, platform: str, output: Path | None = None, index_url: str | None = None) -> Path:
    """Write `pylock.<platform>.toml` (default: in the project root; `output` may be a folder or a
    file named `pylock.toml` / `pylock.<name>.toml`). Returns the path written.

    Raises InputError (unknown platform, bad name), LockfileFormatError (damaged lock),
    ResolutionError / IndexUnreachableError (the index cannot name a wheel).
    """
    from envtiers.export import intact_runtime_lock

    lock = intact_runtime_lock(project, platform)
    locked = next(s for s in load_locked(project, tiers=("pip",)).sets if s.platform == platform)
    catalog = FileCatalog(project, index_url=index_url)
    wheels = catalog.wheels(platform, locked.packages)
    if catalog.unreachable:
        raise ResolutionError(catalog.unreachable, fix="check the network or [pip] index_url (ENVTIERS_INDEX_URL)")
    text = render(
        locked=locked,
        wheels=wheels,
        python=project.python,
        index_url=catalog.index.url.rstrip("/"),
        body_sha256=lock.header.body_sha256,
    )
    target = _target(project, platform, output)
    atomic_write_text(target, text)
    return target


def _target(project: Project, platform: str, output: Path | None) -> Path:
    if output is None:
        return project.root / pylock_name(platform)
    if output.is_dir():
        return output / pylock_name(platform)
    name = output.name
    parts = name.split(".")
    if not (name == "pylock.toml" or (len(parts) == 3 and parts[0] == "pylock" and parts[2] == "toml" and parts[1])):
        raise InputError(
            f"{name} is not a name PEP 751 allows for a lock file",
            fix=f"name it pylock.toml or {pylock_name(platform)}",
        )
    return output
