"""lockfiles/conda-lock.yml: written with conda-lock's own models and writer, read back by a small
strict reader of the same format (importing conda-lock costs a second; `check` must not).

The file is conda-lock's unified format (`version: 1`), so `conda-lock install` and `conda-lock
render` use it as is. envtiers adds keys to `metadata.custom_metadata`:

- `envtiers-format-version`: "2" (1 had no records digest; it is refused with `make lock` as fix);
- `envtiers-input-hash`: environment.yml, the [conda] settings and the pip locks the pip entries
  come from (see `envtiers.conda.locker.expected_input_hash`);
- `envtiers-records-sha256`: the digest of every locked record (name, version, build, URL, md5,
  sha256, dependencies) and of conda-lock's content hashes, so a hand edit of any of them is found;
- `envtiers-version`: the envtiers version that wrote it (provenance only: never hashed nor
  checked, so a new envtiers release leaves committed locks valid);
- `envtiers-spec-sha256`: the digest of exactly what conda-lock's content hash is computed from
  (environment.yml's bytes, the platforms, the virtual packages): when it is unchanged, the stored
  content hash is still right and `check` need not ask conda-lock to recompute it.

WARNING: changing `records_digest` or `spec_digest` makes every committed lock fail `check`: bump
FORMAT_VERSION when you do. conda-lock's `content_hash` is computed by conda-lock's functions, so
conda-lock itself sees an unchanged spec as locked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from envtiers import __version__
from envtiers.errors import LockfileFormatError, TamperedLockError, UnknownFormatError
from envtiers.fsutil import staging_dir
from envtiers.hashing import file_digest, input_hash

FORMAT_VERSION = "2"
FORMAT_KEY = "envtiers-format-version"
INPUT_HASH_KEY = "envtiers-input-hash"
RECORDS_KEY = "envtiers-records-sha256"
SPEC_KEY = "envtiers-spec-sha256"
WRITTEN_BY_KEY = "envtiers-version"
CATEGORY = "main"
RELOCK = "run `make lock` (envtiers lock --tier conda)"


@dataclass(frozen=True)
class Hashes:
    md5: str | None
    sha256: str | None


@dataclass(frozen=True)
class LockedPackage:
    """One entry of `package:`, with the attribute names of conda-lock's LockedDependency."""

    name: str
    version: str
    manager: str
    platform: str
    dependencies: dict[str, str]
    url: str
    hash: Hashes
    build: str | None = None


@dataclass(frozen=True)
class ChannelRef:
    url: str


@dataclass(frozen=True)
class LockMetadata:
    content_hash: dict[str, str]
    channels: tuple[ChannelRef, ...]
    platforms: tuple[str, ...]
    sources: tuple[str, ...]
    custom_metadata: dict[str, str]


@dataclass(frozen=True)
class CondaLock:
    path: Path
    metadata: LockMetadata
    package: tuple[LockedPackage, ...]


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
    spec_hash: str,
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
        custom_metadata={
            FORMAT_KEY: FORMAT_VERSION,
            INPUT_HASH_KEY: input_hash,
            RECORDS_KEY: records_digest(packages, content_hash),
            SPEC_KEY: spec_hash,
            WRITTEN_BY_KEY: __version__,
        },
    )
    return Lockfile(package=packages, metadata=metadata)


def write(lock: Any, path: Path) -> None:
    """Write through conda-lock's writer into a temp file beside `path`, then rename (atomic)."""
    from conda_lock.lockfile import write_conda_lock_file

    # A temp folder rather than a temp name: conda-lock's header quotes the file's own name. The
    # caller holds the lockfiles' file lock, so staging folders left by a killed run are removed.
    staging = staging_dir(path.parent)
    tmp = staging / path.name
    try:
        write_conda_lock_file(lock, tmp, metadata_choices=None)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read(path: Path, *, display: str) -> CondaLock:
    """Parse and validate the lock. Raises LockfileFormatError (UnknownFormatError for a newer envtiers)."""
    try:
        # Every value of the format is a string, so no implicit typing is needed: the base loader
        # (in C where libyaml is there) reads it in a fraction of the safe loader's time.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader))
    except FileNotFoundError:
        raise LockfileFormatError(f"{display} is missing", fix=RELOCK) from None
    except (OSError, UnicodeDecodeError) as error:
        raise LockfileFormatError(f"{display} cannot be read: {error}", fix=RELOCK) from None
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LockfileFormatError(f"{display} is not valid YAML: {first}", fix=RELOCK) from None
    try:
        lock = _parse(path, data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        why = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise LockfileFormatError(
            f"{display} cannot be read as a conda-lock file: {why}", fix="run `make lock` to regenerate it"
        ) from None
    version = lock.metadata.custom_metadata.get(FORMAT_KEY)
    if version is None:
        raise LockfileFormatError(
            f"{display} was not written by envtiers (no {FORMAT_KEY} in metadata.custom_metadata)",
            fix="run `make lock` to regenerate it",
        )
    if version == "1":
        raise LockfileFormatError(
            f"{display} was written by an older envtiers (format 1, without a digest of its records)",
            fix="run `make lock` to rewrite it (the solution does not change)",
        )
    if version != FORMAT_VERSION:
        raise UnknownFormatError(
            f"{display} has envtiers format version {version}, this envtiers reads {FORMAT_VERSION}",
            fix="upgrade envtiers, or run `make lock` to rewrite it in this version's format",
        )
    return lock


def _parse(path: Path, data: Any) -> CondaLock:
    if not isinstance(data, dict) or data.get("version") != "1":
        raise ValueError("expected a mapping with `version: 1`")
    meta = _mapping(data["metadata"], "metadata")
    metadata = LockMetadata(
        content_hash={
            str(k): _text(v, "content_hash") for k, v in _mapping(meta["content_hash"], "content_hash").items()
        },
        channels=tuple(
            ChannelRef(_text(_mapping(c, "channel")["url"], "channel url")) for c in _list(meta["channels"])
        ),
        platforms=tuple(_text(p, "platform") for p in _list(meta["platforms"])),
        sources=tuple(_text(s, "source") for s in _list(meta.get("sources") or [])),
        custom_metadata={str(k): str(v) for k, v in _mapping(meta.get("custom_metadata") or {}, "custom").items()},
    )
    packages = []
    for number, raw in enumerate(_list(data["package"]), start=1):
        entry = _mapping(raw, f"package {number}")
        hashes = _mapping(entry["hash"], f"package {number} hash")
        packages.append(
            LockedPackage(
                name=_text(entry["name"], f"package {number} name"),
                version=_text(entry["version"], f"package {number} version"),
                manager=_text(entry["manager"], f"package {number} manager"),
                platform=_text(entry["platform"], f"package {number} platform"),
                dependencies={
                    str(k): "" if v is None else str(v)
                    for k, v in _mapping(entry.get("dependencies") or {}, "dependencies").items()
                },
                url=_text(entry["url"], f"package {number} url"),
                hash=Hashes(md5=_optional(hashes.get("md5")), sha256=_optional(hashes.get("sha256"))),
                build=_optional(entry.get("build")),
            )
        )
    return CondaLock(path, metadata, tuple(packages))


def _mapping(value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a mapping")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, found {type(value).__name__}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a string, found {value!r}")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def records_digest(packages: Iterable[Any], content_hash: Mapping[str, str]) -> str:
    """The digest of the locked records (see the module docstring before changing it)."""
    rows = sorted(
        [
            str(p.platform),
            str(p.manager),
            str(p.name),
            str(p.version),
            str(p.build or ""),
            str(p.url),
            str(p.hash.md5 or ""),
            str(p.hash.sha256 or ""),
            sorted([str(k), str(v or "")] for k, v in (p.dependencies or {}).items()),
        ]
        for p in packages
    )
    return input_hash({"records": rows, "content-hash": dict(sorted(content_hash.items()))})


def spec_digest(*, environment_file: Path, platforms: Sequence[str], virtual: Mapping[str, Mapping[str, str]]) -> str:
    """The digest of what conda-lock's content hash is computed from (see the module docstring)."""
    return input_hash(
        {
            "environment-file": file_digest(environment_file),
            "platforms": list(platforms),
            "virtual-packages": {p: dict(sorted(virtual[p].items())) for p in platforms},
        }
    )


def read_intact(path: Path, *, display: str) -> CondaLock:
    """`read`, refusing a lock whose records were edited after locking."""
    lock = read(path, display=display)
    if lock.metadata.custom_metadata.get(RECORDS_KEY) != records_digest(lock.package, lock.metadata.content_hash):
        raise TamperedLockError(f"{display} was edited after locking (records digest mismatch)", fix=RELOCK)
    return lock


def stored_input_hash(lock: CondaLock) -> str | None:
    return lock.metadata.custom_metadata.get(INPUT_HASH_KEY) or None


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


def to_json(lock: CondaLock) -> str:
    """A canonical rendering of the locked packages, for comparing two locks in tests and no-op checks."""
    rows = sorted((p.platform, p.manager, p.name, p.version, p.url, p.hash.sha256 or "") for p in lock.package)
    return json.dumps(rows)
