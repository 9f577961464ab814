"""Environments built from lockfiles/conda-lock.yml: `envtiers env create --tier conda`.

The conda records are installed by py-rattler into a folder keyed by the locked content (the
package cache is shared between environments), then the pip entries by uv with
`--require-hashes --no-deps`; the environment is marked complete only after both (envcache).

A remote task whose environment was shipped through the datastore (envtiers.remote.shipping) reads
the conda packages from a local channel the fetch wrote (ENVTIERS_CONDA_MIRRORS points each locked
channel there) and the pip entries from the fetched files (ENVTIERS_SHIPPED_FILES): same files,
same hashes, no channel or index.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from envtiers import envcache
from envtiers.conda import lockfile, rattler
from envtiers.conda.locker import canonical_url, channel_sources
from envtiers.conda.spec import load_settings, mirror_urls
from envtiers.errors import EnvironmentBuildError, InputError
from envtiers.hashing import file_digest, input_hash
from envtiers.pip.uv import Uv, install_error
from envtiers.platforms import require_host
from envtiers.settings import Project

# Set by a shipped environment's bootstrap: the folder holding the conda lock's wheels by filename.
SHIPPED_FILES_VARIABLE = "ENVTIERS_SHIPPED_FILES"


def read_lock(project: Project, *, platform: str | None = None) -> tuple[str, Any]:
    """(platform, the parsed lock) for the host. Raises LockfileFormatError / InputError."""
    platform = require_host(platform)
    return platform, read_platform_lock(project, platform)


def read_platform_lock(project: Project, platform: str) -> Any:
    """The parsed lock, which must hold `platform`, on any host (a Mac launcher ships linux-64's
    files). Raises LockfileFormatError / InputError."""
    path = load_settings(project).lockfile(project)
    lock = lockfile.read_intact(path, display=project.rel(path))
    if platform not in lock.metadata.platforms:
        raise InputError(
            f"{project.rel(path)} has no {platform} packages",
            fix=f"add {platform} to [project] platforms and run `make lock`",
        )
    return lock


def env_key(lock: Any, platform: str) -> str:
    """The environment's cache key: the exact files installed (URL and sha256), nothing else."""
    files = sorted((p.manager, p.url, p.hash.sha256 or "") for p in lock.package if p.platform == platform)
    return input_hash({"tier": "conda", "platform": platform, "files": files})


def default_prefix(project: Project, key: str) -> Path:
    return project.cache_dir / "envs" / f"conda-{key.removeprefix('sha256:')[:16]}"


def env_path(project: Project, *, platform: str | None = None, target: Path | None = None) -> Path:
    platform, lock = read_lock(project, platform=platform)
    return target or default_prefix(project, env_key(lock, platform))


def create(
    project: Project, *, platform: str | None = None, target: Path | None = None, uv: Uv | None = None
) -> envcache.EnvInfo:
    """Build (or reuse) the host's conda environment from the lock.

    Raises EnvironmentBuildError when a package or wheel does not match its locked hash, or the
    install fails; the environment is then left unmarked and rebuilt by the next call.
    """
    platform, lock = read_lock(project, platform=platform)
    key = env_key(lock, platform)
    prefix = (target or default_prefix(project, key)).absolute()
    wheels = [p for p in lock.package if p.platform == platform and p.manager == "pip"]
    cache_dir = project.cache_dir / "conda"
    settings = load_settings(project)
    uv = uv or Uv()

    def build(prefix: Path) -> None:
        records = [record for record, _ in locked_records(project, lock, platform)]
        rattler.install(records, prefix=prefix, cache_dir=cache_dir)
        if wheels:
            _install_wheels(uv, prefix, wheels)

    details: dict[str, object] = {"lock": project.rel(settings.lockfile(project)), "platform": platform}
    return envcache.ensure(
        tier="conda",
        key=key,
        prefix=prefix,
        build=build,
        lock_dir=project.cache_dir / "locks",
        details=details,
        user_target=target is not None,
    )


def locked_records(project: Project, lock: Any, platform: str) -> list[tuple[Any, int]]:
    """The channel's record of each conda package locked for `platform`, read through the mirrors,
    each with the index of its channel in the lock's channel list. Raises EnvironmentBuildError for
    a package the channel no longer lists or lists with another sha256."""
    channels = [c.url for c in lock.metadata.channels]
    sources = channel_sources(channels, mirror_urls(project, load_settings(project)))
    conda = [p for p in lock.package if p.platform == platform and p.manager == "conda"]
    records = _records(conda, sources, platform=platform, cache_dir=project.cache_dir / "conda")
    found = []
    for record in records:
        url = canonical_url(str(record.url), sources)
        index = next((i for i, (canonical, _) in enumerate(sources) if url.startswith(canonical + "/")), 0)
        found.append((record, index))
    return found


def wheel_filename(url: str) -> str:
    """The file name a pip entry's URL ends in (`name-version-tags.whl`), percent-decoded."""
    return unquote(urlparse(url).path.rsplit("/", 1)[-1])


def _records(conda: Sequence[Any], sources: Sequence[tuple[str, str]], *, platform: str, cache_dir: Path) -> list[Any]:
    """The channel's records for the locked entries: same file, same sha256, or an error.

    Read through the mirror when one is set; the records then point at the mirror's files.
    """
    listed = rattler.query(
        channels=[source for _, source in sources],
        platform=platform,
        names=sorted({p.name for p in conda}),
        cache_dir=cache_dir,
    )
    by_url = {canonical_url(str(record.url), sources): record for record in listed}
    chosen = []
    for package in conda:
        record = by_url.get(package.url)
        if record is None:
            raise EnvironmentBuildError(
                f"the conda channel no longer lists {package.url.rsplit('/', 1)[-1]} (locked in conda-lock.yml)",
                fix="check [conda.mirrors] in envs/tiers.toml, or run `make lock` to lock what the channel has",
            )
        sha256 = record.sha256.hex() if record.sha256 else None
        if sha256 != package.hash.sha256:
            raise EnvironmentBuildError(
                f"the conda channel lists {package.url.rsplit('/', 1)[-1]} with sha256 {sha256}, the lock has "
                f"{package.hash.sha256}",
                fix="the channel (or its mirror) changed the package since locking; if expected, run "
                "`envtiers lock --tier conda --force` and review the diff",
            )
        _verify_local_file(str(record.url), package.hash.sha256)
        chosen.append(record)
    return chosen


def _verify_local_file(url: str, sha256: str | None) -> None:
    """py-rattler verifies what it downloads, but links file:// packages unchecked: hash them here."""
    if not url.startswith("file://"):
        return
    path = Path(url2pathname(urlparse(url).path))
    if not path.is_file():
        raise EnvironmentBuildError(
            f"the conda mirror lists {path.name} but holds no such file ({path}): a metadata-only mirror "
            "can lock, not install",
            fix="point [conda.mirrors] in envs/tiers.toml at a mirror with the package files, or remove the "
            "mirror (ENVTIERS_CONDA_MIRRORS='') to install from the channel itself",
        )
    actual = file_digest(path)
    if actual != sha256:
        raise EnvironmentBuildError(
            f"a conda package does not match the hash recorded in lockfiles/conda-lock.yml: {path.name} has "
            f"sha256 {actual}, the lock has {sha256}",
            fix="the channel (or its mirror) changed the package since locking; if expected, run "
            "`envtiers lock --tier conda --force` and review the diff",
        )


def _install_wheels(uv: Uv, prefix: Path, wheels: Sequence[Any]) -> None:
    ordered = sorted(wheels, key=lambda w: w.name)
    lines = [f"{w.name} @ {_wheel_url(w.url)} --hash=sha256:{w.hash.sha256}" for w in ordered]
    with tempfile.TemporaryDirectory(prefix="envtiers-conda-pip-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        result = uv.run(
            [
                "pip",
                "install",
                "--python",
                str(envcache.python_in(prefix)),
                "--require-hashes",
                "--no-build",
                "--no-deps",
                "--quiet",
                "-r",
                str(requirements),
            ]
        )
    if result.returncode != 0:
        raise install_error(result.stderr, what="the pip entries of conda-lock.yml")


def _wheel_url(url: str) -> str:
    """`url`, or the shipped copy of its file (ENVTIERS_SHIPPED_FILES) when there is one: uv still
    checks it against the locked hash."""
    shipped = os.environ.get(SHIPPED_FILES_VARIABLE)
    if shipped:
        path = Path(shipped) / wheel_filename(url)
        if path.is_file():
            return path.absolute().as_uri()
    return url
