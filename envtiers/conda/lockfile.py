"""lockfiles/conda-lock.yml, written and read with conda-lock's own models, parser and content hash.

The file is conda-lock's unified format (`version: 1`), so `conda-lock install` and `conda-lock
render` use it as is. envtiers adds three keys to `metadata.custom_metadata`: its format version,
its own input hash (environment.yml, the [conda] settings and the pip locks the pip entries come
from) and the envtiers version that wrote it (provenance only: never hashed nor checked, so a new
envtiers release leaves committed locks valid). conda-lock's `content_hash` is computed by
conda-lock's functions, so conda-lock itself sees an unchanged spec as locked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from envtiers import __version__
from envtiers.errors import LockfileFormatError, UnknownFormatError

FORMAT_VERSION = "1"
FORMAT_KEY = "envtiers-format-version"
INPUT_HASH_KEY = "envtiers-input-hash"
WRITTEN_BY_KEY = "envtiers-version"
CATEGORY = "main"


@dataclass(frozen=True)
class CondaEntry:
    """One solved conda record, with the URL of the real channel (never a mirror's)."""

    name: str
    version: str
    build: str
    url: str
    md5: str
    sha256: str
    depends: tuple[str, ...]


@dataclass(frozen=True)
class PipEntry:
    name: str
    version: str
    url: str
    sha256: str


def dependency_map(depends: Sequence[str]) -> dict[str, str]:
    """conda `depends` strings as conda-lock stores them: name -> the rest of the match spec."""
    result: dict[str, str] = {}
    for text in depends:
        name, _, rest = text.strip().partition(" ")
        result[name] = rest.strip()
    return result


def build_lockfile(
    *,
    channels: Sequence[str],
    platforms: Sequence[str],
    conda: Mapping[str, Sequence[CondaEntry]],
    pip: Mapping[str, Sequence[PipEntry]],
    content_hash: Mapping[str, str],
    input_hash: str,
    sources: Sequence[str],
) -> Any:
    """The conda-lock `Lockfile` model for the solved records (pure: nothing is written)."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta
    from conda_lock.models.channel import Channel

    packages = []
    for platform in platforms:
        for entry in conda[platform]:
            packages.append(
                LockedDependency(
                    name=entry.name,
                    version=entry.version,
                    manager="conda",
                    platform=platform,
                    dependencies=dependency_map(entry.depends),
                    url=entry.url,
                    hash=HashModel(md5=entry.md5, sha256=entry.sha256),
                    build=entry.build,
                    categories={CATEGORY},
                )
            )
        for wheel in pip.get(platform, ()):
            packages.append(
                LockedDependency(
                    name=wheel.name,
                    version=wheel.version,
                    manager="pip",
                    platform=platform,
                    dependencies={},
                    url=wheel.url,
                    hash=HashModel(sha256=wheel.sha256),
                    categories={CATEGORY},
                )
            )
    metadata = LockMeta(
        content_hash=dict(content_hash),
        channels=[Channel.from_string(c) for c in channels],
        platforms=list(platforms),
        sources=list(sources),
        custom_metadata={FORMAT_KEY: FORMAT_VERSION, INPUT_HASH_KEY: input_hash, WRITTEN_BY_KEY: __version__},
    )
    return Lockfile(package=packages, metadata=metadata)


def write(lock: Any, path: Path) -> None:
    """Write through conda-lock's writer into a temp file beside `path`, then rename (atomic)."""
    from conda_lock.lockfile import write_conda_lock_file

    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp folder rather than a temp name: conda-lock's header quotes the file's own name.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = staging / path.name
    try:
        write_conda_lock_file(lock, tmp, metadata_choices=None)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read(path: Path, *, display: str) -> Any:
    """Parse with conda-lock's parser. Raises LockfileFormatError (UnknownFormatError for a newer envtiers)."""
    from conda_lock.lockfile import parse_conda_lock_file

    if not path.is_file():
        raise LockfileFormatError(f"{display} is missing", fix="run `make lock` (envtiers lock --tier conda)")
    try:
        lock = parse_conda_lock_file(path)
    except Exception as error:  # pydantic ValidationError, yaml errors, conda-lock's own
        summary = " ".join(str(error).split())[:300]
        raise LockfileFormatError(
            f"{display} cannot be read by conda-lock: {summary}", fix="run `make lock` to regenerate it"
        ) from None
    custom = lock.metadata.custom_metadata or {}
    version = custom.get(FORMAT_KEY)
    if version is None:
        raise LockfileFormatError(
            f"{display} was not written by envtiers (no {FORMAT_KEY} in metadata.custom_metadata)",
            fix="run `make lock` to regenerate it",
        )
    if version != FORMAT_VERSION:
        raise UnknownFormatError(
            f"{display} has envtiers format version {version}, this envtiers reads {FORMAT_VERSION}",
            fix="upgrade envtiers, or run `make lock` to rewrite it in this version's format",
        )
    return lock


def stored_input_hash(lock: Any) -> str | None:
    custom = lock.metadata.custom_metadata or {}
    value = custom.get(INPUT_HASH_KEY)
    return str(value) if value else None


def content_hashes(
    *, environment_file: Path, platforms: Sequence[str], virtual: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """conda-lock's per-platform content hash of environment.yml and the virtual packages.

    The same recipe as `conda-lock --check-input-hash --virtual-package-spec FILE
    --pypi_to_conda_lookup_file {}` with these platforms, computed by conda-lock's code.
    """
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    with tempfile.TemporaryDirectory(prefix="envtiers-conda-hash-") as tmp:
        mapping = Path(tmp) / "pypi-to-conda.json"
        mapping.write_text("{}")  # identity map: conda-lock would otherwise download one
        vp_file = Path(tmp) / "virtual-packages.yml"
        vp_file.write_text(virtual_package_spec(platforms=platforms, virtual=virtual))
        spec = make_lock_spec(
            src_files=[environment_file], platform_overrides=list(platforms), mapping_url=str(mapping)
        )
        # Called plainly: as a context manager it yields None and the hash omits the packages.
        repo = virtual_package_repo_from_specification(vp_file)
        return {str(k): str(v) for k, v in compute_content_hashes(spec, repo).items()}


def virtual_package_spec(*, platforms: Sequence[str], virtual: Mapping[str, Mapping[str, str]]) -> str:
    """conda-lock's `--virtual-package-spec` file for these settings (the text users can pass it)."""
    subdirs = {p: {"packages": dict(sorted(virtual[p].items()))} for p in platforms}
    return str(yaml.safe_dump({"subdirs": subdirs}, sort_keys=True))


def to_json(lock: Any) -> str:
    """A canonical rendering of the locked packages, for comparing two locks in tests and no-op checks."""
    rows = sorted((p.platform, p.manager, p.name, p.version, p.url, p.hash.sha256 or "") for p in lock.package)
    return json.dumps(rows)
