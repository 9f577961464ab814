"""Every committed lock of a project as one list of locked packages, tier by tier and platform by platform.

The review commands (diff, audit, sbom, check --verbose) read the locks only through this module, which
reads them only through each tier's own reader (`envtiers.pip.lockfile`, `envtiers.conda.lockfile`,
`envtiers.image.record`), so they see exactly what `check` and the installers see.

- pip: one set per platform, from `lockfiles/pip/<platform>.txt` (name, version, the accepted hashes);
- conda: one set per platform of `lockfiles/conda-lock.yml`: conda records (URL, md5, sha256) and the
  pip entries (the exact wheel: URL, sha256);
- image: the linux-64 pip lock (what the image installs) plus the base image pinned by digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from envtiers.errors import InputError, LockfileFormatError
from envtiers.review.names import REVIEW_TIERS
from envtiers.settings import Project

IMAGE_PLATFORM = "linux-64"
# What counts as a CUDA/GPU library in a lock: NVIDIA's wheels and conda-forge's CUDA packages.
GPU_PREFIXES = ("nvidia-", "cuda-")


@dataclass(frozen=True)
class LockedPackage:
    name: str  # canonical (PEP 503) for PyPI packages, as recorded for conda packages
    version: str
    manager: str  # "pypi" | "conda"
    hashes: tuple[str, ...] = ()  # "sha256:<hex>", "md5:<hex>"
    url: str | None = None  # the exact file, when the lock names one (conda, the conda lock's pip entries)
    build: str | None = None  # conda build string
    channel: str | None = None  # conda channel base URL
    # A conda record that depends on python: a Python distribution, so PyPI advisories of its name apply.
    # (conda-forge's `zstd` is the C library, PyPI's `zstd` a binding: the name alone would mislead.)
    python_package: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.manager, self.name)

    @property
    def is_gpu(self) -> bool:
        return self.name.lower().startswith(GPU_PREFIXES)

    @property
    def sha256(self) -> tuple[str, ...]:
        return tuple(h.removeprefix("sha256:") for h in self.hashes if h.startswith("sha256:"))


@dataclass(frozen=True)
class LockedSet:
    """The packages one tier pins for one platform, and the file they were read from."""

    tier: str
    platform: str
    path: str  # relative to the project root
    packages: tuple[LockedPackage, ...]
    base_image: str | None = None  # image tier: name@sha256:...
    image: str | None = None  # image tier: repository@digest from lockfiles/image.json, when committed

    @property
    def label(self) -> str:
        return f"{self.tier} {self.platform}"

    def by_key(self) -> dict[tuple[str, str], LockedPackage]:
        return {p.key: p for p in self.packages}


@dataclass
class LoadReport:
    sets: list[LockedSet] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<file>: why", for locks a tier has not written


def load_locked(project: Project, *, tiers: Sequence[str] | None = None) -> LoadReport:
    """The locked sets of the chosen tiers (default: every tier the project has).

    A tier without its lockfile is skipped (and said so in `skipped`); a damaged lockfile raises
    LockfileFormatError: reviewing it would review the damage.
    """
    chosen = tuple(tiers or REVIEW_TIERS)
    unknown = sorted(set(chosen) - set(REVIEW_TIERS))
    if unknown:
        raise InputError(f"unknown tier(s) {', '.join(unknown)}", fix=f"use {', '.join(REVIEW_TIERS)}")
    report = LoadReport()
    pip_sets: dict[str, LockedSet] = {}
    for platform in project.platforms:
        path = project.pip_lock_dir / f"{platform}.txt"
        if path.is_file():
            pip_sets[platform] = _pip_set(project, path, platform)
        elif "pip" in chosen or ("image" in chosen and platform == IMAGE_PLATFORM):
            report.skipped.append(f"{project.rel(path)}: not locked")
    if "pip" in chosen:
        report.sets += [pip_sets[p] for p in project.platforms if p in pip_sets]
    if "conda" in chosen:
        report.sets += _conda_sets(project, report)
    if "image" in chosen and IMAGE_PLATFORM in pip_sets and _has_image_tier(project):
        report.sets.append(_image_set(project, pip_sets[IMAGE_PLATFORM]))
    return report


def _pip_set(project: Project, path: Path, platform: str) -> LockedSet:
    from envtiers.pip import lockfile

    shown = project.rel(path)
    lock = lockfile.read(path, display=shown)
    pins = lockfile.parse_body(lock.body, path=Path(shown), first_line=lock.first_line)
    packages = tuple(
        sorted((LockedPackage(p.name, p.version, "pypi", hashes=p.hashes) for p in pins), key=lambda p: p.name)
    )
    return LockedSet("pip", platform, shown, packages)


def _conda_sets(project: Project, report: LoadReport) -> list[LockedSet]:
    from envtiers.conda import lockfile
    from envtiers.conda.spec import load_settings

    path = load_settings(project).lockfile(project)
    shown = project.rel(path)
    if not path.is_file():
        report.skipped.append(f"{shown}: not locked")
        return []
    lock = lockfile.read(path, display=shown)  # the strict reader `check` uses, and its errors
    platforms = list(lock.metadata.platforms)
    by_platform: dict[str, dict[tuple[str, str], LockedPackage]] = {}
    for entry in lock.package:
        digests = (("sha256", entry.hash.sha256), ("md5", entry.hash.md5))
        hashes = tuple(f"{algo}:{value}" for algo, value in digests if value)
        if entry.manager == "pip":
            package = LockedPackage(canonicalize_name(entry.name), entry.version, "pypi", hashes, url=entry.url)
        else:
            package = LockedPackage(
                entry.name,
                entry.version,
                "conda",
                hashes,
                url=entry.url,
                build=entry.build,
                channel=_channel(entry.url),
                python_package="python" in entry.dependencies,
            )
        by_platform.setdefault(entry.platform, {})[package.key] = package  # one entry per category in v1
    platforms = [p for p in platforms if p in by_platform]
    return [
        LockedSet("conda", p, shown, tuple(sorted(by_platform[p].values(), key=lambda x: (x.manager, x.name))))
        for p in platforms
    ]


def _channel(url: str) -> str | None:
    # https://conda.anaconda.org/conda-forge/linux-64/x.conda -> https://conda.anaconda.org/conda-forge
    parts = url.rsplit("/", 2)
    return parts[0] if len(parts) == 3 else None


def _has_image_tier(project: Project) -> bool:
    from envtiers.image.record import record_path
    from envtiers.image.spec import DOCKERFILE

    return (project.root / DOCKERFILE).is_file() or record_path(project).is_file()


def _image_set(project: Project, linux: LockedSet) -> LockedSet:
    """The image: the linux-64 lock it installs, its base by digest, and the pushed image when recorded."""
    from envtiers.image.record import read_record, record_path
    from envtiers.image.spec import DOCKERFILE, check_pinned, dockerfile_base_default

    image = base = None
    if record_path(project).is_file():
        record = read_record(project)
        image = record.reference
        base = record.base_image or None
    if base is None:
        dockerfile = project.root / DOCKERFILE
        text = dockerfile.read_text() if dockerfile.is_file() else ""
        raw = project.raw.get("image", {})
        declared = raw.get("base") if isinstance(raw, dict) else None
        base = str(declared) if declared else dockerfile_base_default(text)
        if base is not None:
            try:
                check_pinned(base, where=str(DOCKERFILE))
            except InputError as error:
                raise LockfileFormatError(error.headline, fix=error.fix) from None
    return LockedSet("image", IMAGE_PLATFORM, linux.path, linux.packages, base_image=base, image=image)
