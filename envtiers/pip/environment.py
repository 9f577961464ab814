"""Environments built from pip locks: `envtiers env create --tier pip`, and the project's .venv."""

from __future__ import annotations

import sys
from pathlib import Path

from envtiers import envcache
from envtiers.hashing import input_hash
from envtiers.pip import lockfile
from envtiers.pip.link import link_project as link_into
from envtiers.pip.locker import dev_lock_path, runtime_lock_path
from envtiers.pip.uv import Uv
from envtiers.platforms import require_host
from envtiers.settings import Project


def lock_paths(project: Project, *, platform: str, dev: bool) -> list[Path]:
    paths = [runtime_lock_path(project, platform)]
    if dev:
        paths.append(dev_lock_path(project, platform))
    return paths


def env_key(project: Project, locks: list[lockfile.PipLock]) -> str:
    """The environment's cache key: the locked content (bodies), not the files' paths or headers."""
    return input_hash({"tier": "pip", "python": project.python, "locks": [lock.header.body_sha256 for lock in locks]})


def default_prefix(project: Project, key: str) -> Path:
    return project.cache_dir / "envs" / f"pip-{key.removeprefix('sha256:')[:16]}"


def read_locks(project: Project, *, platform: str | None = None, dev: bool = False) -> list[lockfile.PipLock]:
    """The host's lockfiles, validated. Raises LockfileFormatError / InputError."""
    platform = require_host(platform)
    locks = []
    for path in lock_paths(project, platform=platform, dev=dev):
        locks.append(lockfile.read_intact(path, display=project.rel(path)))
    return locks


def env_path(project: Project, *, platform: str | None = None, dev: bool = False, target: Path | None = None) -> Path:
    locks = read_locks(project, platform=platform, dev=dev)
    return target or default_prefix(project, env_key(project, locks))


def create(
    project: Project,
    *,
    platform: str | None = None,
    dev: bool = False,
    target: Path | None = None,
    uv: Uv | None = None,
    link_project: bool = False,
) -> envcache.EnvInfo:
    """Build (or reuse) the environment for the host's pip lock (plus the dev lock when `dev`).

    `target` overrides the content-addressed cache location (the project's .venv); `link_project`
    puts the project root on the environment's sys.path and writes its console scripts (an
    editable install without a build, see envtiers.pip.link).
    Raises EnvironmentBuildError on a hash mismatch or install failure; nothing is marked complete.
    """
    locks = read_locks(project, platform=platform, dev=dev)
    key = env_key(project, locks)
    prefix = (target or default_prefix(project, key)).absolute()
    python = _interpreter(project.python)
    uv = uv or Uv()

    def build(prefix: Path) -> None:
        uv.venv(prefix, python=python)
        args = [str(lock.path) for lock in locks]
        # Wheels only, each checked against the lock's hashes: a wheel whose hash does not match is a
        # refusal, never a fallback to building the sdist the lock also lists.
        args += ["--python", str(envcache.python_in(prefix)), "--require-hashes", "--no-build", "--quiet"]
        if project.pip.index_url:
            args += ["--index-url", project.pip.index_url]
        for link in project.pip.find_links:
            args += ["--find-links", link]
        uv.sync(args, what=", ".join(project.rel(lock.path) for lock in locks))

    details: dict[str, object] = {"locks": [project.rel(lock.path) for lock in locks], "python": project.python}
    info = envcache.ensure(
        tier="pip",
        key=key,
        prefix=prefix,
        build=build,
        lock_dir=project.cache_dir / "locks",
        details=details,
        user_target=target is not None,
    )
    if link_project:
        # After `ensure`, so a reused environment is (re-)linked too: the .pth and console scripts
        # are not part of what the lock decides.
        link_into(prefix, project.root)
    return info


def _interpreter(python: str) -> str:
    """Prefer the running interpreter when it is the locked version: no search, no surprise."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    wanted = ".".join(python.split(".")[:2])
    if running == wanted and len(python.split(".")) == 2:
        return sys.executable
    return python
