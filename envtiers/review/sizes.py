"""The exact file each locked package installs on a platform, and its download size, cached.

A pip lock holds versions and the sha256 of every file of each version; which wheel a platform gets
and how big it is are answered by the package index (the simple API, with PEP 700 sizes; a HEAD
request when the index gives no size), through the same wheel choice the conda lock uses
(`envtiers.wheels`). Conda records' sizes come from the channel's repodata when it is a
local folder (a mirror), else they stay unknown.

Answers are cached in `<cache>/review/files.json`, keyed by the lock's own hashes: a sha256 names
the bytes, so a cached size can never go stale.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from envtiers.errors import EnvtiersError
from envtiers.fsutil import atomic_write_text
from envtiers.review.locked import LockedPackage
from envtiers.settings import Project
from envtiers.wheels import SimpleIndex, choose, declared_virtual, ranking

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass(frozen=True)
class LockedFile:
    filename: str
    url: str
    sha256: str
    size: int | None


class FileCatalog:
    """Which file a locked package installs on a platform, from the cache or the index."""

    def __init__(self, project: Project, *, index_url: str | None = None, offline: bool = False) -> None:
        self.project = project
        self.offline = offline
        self.index = SimpleIndex(index_url or project.pip.index_url)
        self.path = project.cache_dir / "review" / "files.json"
        self.unreachable: str | None = None  # why the index could not be asked, once it failed
        self._cache: dict[str, dict[str, object]] = self._read_cache()
        self._dirty = False
        self._conda_sizes: dict[str, int] | None = None

    def wheels(self, platform: str, packages: Iterable[LockedPackage]) -> dict[str, LockedFile | None]:
        """name -> the wheel `platform` installs (None: the index has none of the locked files for it)."""
        wanted = [p for p in packages if p.manager == "pypi"]
        result: dict[str, LockedFile | None] = {}
        missing = []
        for package in wanted:
            cached = self._cache.get(_key(platform, package))
            if cached is not None:
                result[package.name] = LockedFile(**cached) if cached.get("filename") else None  # type: ignore[arg-type]
            else:
                missing.append(package)
        if missing and not self.offline and self.unreachable is None:
            virtual = declared_virtual(self.project, platform)
            ranks = ranking(platform, self.project.python, virtual)
            try:
                self.index.prefetch(p.name for p in missing)
                for package in missing:
                    chosen = choose(self.index.files(package.name), hashes=set(package.sha256), ranking=ranks)
                    found = None
                    if chosen is not None and chosen.sha256:
                        size = chosen.size if chosen.size is not None else _head_size(chosen.url)
                        found = LockedFile(chosen.filename, chosen.url, chosen.sha256, size)
                    result[package.name] = found
                    self._cache[_key(platform, package)] = asdict(found) if found else {"filename": None}
                    self._dirty = True
            except EnvtiersError as error:
                self.unreachable = error.headline
        self.save()
        return result

    def size(self, platform: str, package: LockedPackage) -> int | None:
        """Download size in bytes of what `package` installs on `platform`, None when unknown."""
        if package.manager == "conda":
            return self._conda_size(package)
        found = self.wheels(platform, [package]).get(package.name)
        return found.size if found else None

    def sizes(self, platform: str, packages: Iterable[LockedPackage]) -> dict[tuple[str, str], int | None]:
        chosen = list(packages)
        self.wheels(platform, [p for p in chosen if p.manager == "pypi"])
        return {p.key: self.size(platform, p) for p in chosen}

    def _conda_size(self, package: LockedPackage) -> int | None:
        if not package.sha256 or not package.url:
            return None
        if self._conda_sizes is None:
            self._conda_sizes = _local_repodata_sizes(self.project)
        return self._conda_sizes.get(f"{package.url.rsplit('/', 1)[-1]}|{package.sha256[0]}")

    def _read_cache(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format-version") != CACHE_FORMAT:
            return {}  # another format: start afresh rather than trust it
        files = data.get("files")
        return files if isinstance(files, dict) else {}

    def save(self) -> None:
        if self._dirty:
            atomic_write_text(self.path, json.dumps({"format-version": CACHE_FORMAT, "files": self._cache}, indent=0))
            self._dirty = False


def _key(platform: str, package: LockedPackage) -> str:
    # The hashes say which files the lock accepts; the platform says which of them is installed.
    return f"{platform}:{package.name}=={package.version}:{','.join(sorted(package.sha256))}"


def _head_size(url: str) -> int | None:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _local_repodata_sizes(project: Project) -> dict[str, int]:
    """'<filename>|<sha256>' -> size for every record of the conda mirrors that are local folders."""
    from envtiers.conda.spec import load_settings, mirror_urls

    sizes: dict[str, int] = {}
    try:
        mirrors = mirror_urls(project, load_settings(project))
    except EnvtiersError:
        return sizes
    for base in mirrors.values():
        if not base.startswith("file://"):
            continue
        for repodata in Path(base.removeprefix("file://")).glob("*/repodata.json"):
            try:
                data = json.loads(repodata.read_text())
            except (OSError, ValueError):
                continue
            for section in ("packages", "packages.conda"):
                records: Mapping[str, Mapping[str, object]] = data.get(section) or {}
                for filename, record in records.items():
                    if isinstance(record.get("size"), int) and record.get("sha256"):
                        sizes[f"{filename}|{record['sha256']}"] = int(record["size"])  # type: ignore[call-overload]
    return sizes


def human(size: int | None, *, signed: bool = False) -> str:
    """1234567 -> '1.2 MB' (decimal units, as PyPI shows them); None -> 'unknown'."""
    if size is None:
        return "unknown"
    sign = "-" if size < 0 else "+" if signed and size > 0 else ""
    value = float(abs(size))
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1000
    return f"{sign}{value:.1f} GB"
