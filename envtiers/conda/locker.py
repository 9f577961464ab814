"""`envtiers lock --tier conda`: solve environment.yml per platform with py-rattler, add the pip
tier's locked wheels, and write lockfiles/conda-lock.yml (skipped when the inputs are unchanged).

The pip entries come from `lockfiles/pip/<platform>.txt`, so lock the pip tier first (`envtiers
lock` does). Mirrors are read instead of the channels they stand for, and their URLs are rewritten
to the channel's own before anything is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from envtiers.conda import lockfile, rattler
from envtiers.conda.inputs import (
    Inputs,
    expected_content_hashes,
    expected_input_hash,
    expected_spec_digest,
    read_inputs,
)
from envtiers.conda.spec import (
    channel_url,
    mirror_urls,
)
from envtiers.errors import EnvtiersError, ResolutionError
from envtiers.fsutil import file_lock
from envtiers.settings import Project
from envtiers.tiers import LockResult
from envtiers.wheels import SimpleIndex, locked_wheels

log = logging.getLogger(__name__)

__all__ = ["Inputs", "expected_content_hashes", "expected_input_hash", "expected_spec_digest", "lock", "read_inputs"]


def lock(
    project: Project,
    *,
    force: bool = False,
    index: SimpleIndex | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> LockResult:
    """Bring lockfiles/conda-lock.yml up to date with its inputs.

    Raises ResolutionError with the solver's explanation (nothing is written then),
    IndexUnreachableError when a channel or the package index cannot be read.
    """
    started = time.monotonic()
    inputs = read_inputs(project)
    path = inputs.settings.lockfile(project)
    display = project.rel(path)
    wanted_hash = expected_input_hash(project, inputs)
    spec_hash = expected_spec_digest(project, inputs)
    if not force and _fresh(path, display, wanted_hash, spec_hash):
        report(f"{display}: up to date")
        return LockResult(path, False, 0, time.monotonic() - started)
    content_hash = expected_content_hashes(project, inputs)

    cache_dir = project.cache_dir / "conda"
    sources = channel_sources(inputs.environment.channels, mirror_urls(project, inputs.settings))
    conda: dict[str, list[lockfile.CondaEntry]] = {}
    for platform in project.platforms:
        report(f"{display}: solving for {platform} ...")
        records = rattler.solve(
            channels=[source for _, source in sources],
            specs=inputs.environment.specs,
            platform=platform,
            virtual=inputs.settings.virtual_packages[platform],
            cache_dir=cache_dir,
        )
        conda[platform] = [_entry(record, sources) for record in records]
        _check_python(project, platform, conda[platform])
    pip = pip_entries(
        project, inputs, index=index or SimpleIndex(project.pip.index_url, cache_dir=project.cache_dir / "index")
    )
    document = lockfile.build_lockfile(
        channels=inputs.environment.channels,
        platforms=project.platforms,
        conda=conda,
        pip=pip,
        content_hash=content_hash,
        input_hash=wanted_hash,
        spec_hash=spec_hash,
        sources=[_relative_source(project, inputs.settings.environment_file)],
    )
    with file_lock(project.lockfiles_dir / ".envtiers-lock", what="locking"):
        lockfile.write(document, path)
    count = sum(len(v) for v in conda.values()) + sum(len(v) for v in pip.values())
    report(f"{display}: locked {count} packages for {', '.join(project.platforms)}")
    return LockResult(path, True, count, time.monotonic() - started)


def pip_entries(project: Project, inputs: Inputs, *, index: SimpleIndex) -> dict[str, list[lockfile.PipEntry]]:
    """The wheel each pip pin installs on each platform (URL and sha256), from the index."""
    result: dict[str, list[lockfile.PipEntry]] = {}
    for platform in project.platforms:
        lock = inputs.pip_locks[platform]
        wheels = locked_wheels(
            lock.pins,
            index=index,
            platform=platform,
            python=project.python,
            virtual=inputs.settings.virtual_packages[platform],
            fix=f"run `envtiers lock --tier pip --force` against the index {project.rel(lock.path)} came from, "
            "then lock the conda tier",
        )
        entries = [
            lockfile.PipEntry(pin.name, pin.version, wheel.url, wheel.sha256 or "")
            for pin, wheel in zip(lock.pins, wheels, strict=True)
        ]
        result[platform] = entries
    return result


def _fresh(path: Path, display: str, wanted_hash: str, spec_hash: str) -> bool:
    """Whether the lock was made from these inputs and is intact (conda-lock's content hash is then
    unchanged too: it is computed from exactly what `spec_hash` covers)."""
    try:
        current = lockfile.read(path, display=display)
    except EnvtiersError:
        return False
    custom = current.metadata.custom_metadata
    return (
        lockfile.stored_input_hash(current) == wanted_hash
        and custom.get(lockfile.SPEC_KEY) == spec_hash
        and custom.get(lockfile.RECORDS_KEY) == lockfile.records_digest(current.package, current.metadata.content_hash)
    )


def channel_sources(channels: Sequence[str], mirrors: Mapping[str, str]) -> list[tuple[str, str]]:
    """(canonical base URL, URL actually read) for each channel, in priority order."""
    pairs = []
    for channel in channels:
        canonical = channel_url(channel)
        pairs.append((canonical, mirrors.get(canonical, canonical)))
    return pairs


def canonical_url(url: str, sources: Sequence[tuple[str, str]]) -> str:
    for canonical, source in sources:
        if url.startswith(source.rstrip("/") + "/"):
            return canonical + url[len(source.rstrip("/")) :]
    return url


def mirrored_url(url: str, sources: Sequence[tuple[str, str]]) -> str:
    for canonical, source in sources:
        if url.startswith(canonical + "/"):
            return source.rstrip("/") + url[len(canonical) :]
    return url


def _entry(record: Any, sources: Sequence[tuple[str, str]]) -> lockfile.CondaEntry:
    if record.md5 is None or record.sha256 is None:
        raise ResolutionError(
            f"the channel lists {record.file_name} without md5 and sha256: it cannot be locked",
            fix="use a channel (or mirror) whose repodata records package hashes",
        )
    return lockfile.CondaEntry(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        url=canonical_url(str(record.url), sources),
        md5=record.md5.hex(),
        sha256=record.sha256.hex(),
        depends=tuple(record.depends),
    )


def _check_python(project: Project, platform: str, entries: Sequence[lockfile.CondaEntry]) -> None:
    python = next((e for e in entries if e.name == "python"), None)
    if python is None:
        raise ResolutionError(
            f"the conda solution for {platform} has no python", fix="add 'python 3.11.*' to envs/environment.yml"
        )
    if python.version != project.python and not python.version.startswith(project.python + "."):
        raise ResolutionError(
            f"the conda solution for {platform} has python {python.version}, the project pins {project.python}",
            fix=f"require 'python {project.python}.*' in envs/environment.yml",
        )


def _relative_source(project: Project, path: Path) -> str:
    try:
        return str(Path("..") / path.relative_to(project.root))
    except ValueError:
        return str(path)
