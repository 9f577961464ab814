"""Offline, solver-free check of lockfiles/conda-lock.yml against its inputs.

Recomputes and compares: the digest of the locked records (a hand edit of a sha256, md5, version or
URL is found), envtiers' input hash and conda-lock's content hashes (recomputed by conda-lock only
when what they cover changed); where the channel's repodata is at hand (a mirror folder, like the
committed conda-forge snapshot), each record's sha256 and md5 against it; then checks the
solution itself without a solver: each environment.yml spec is matched by exactly one locked record
per platform (conda MatchSpec semantics), every record's dependencies are met by another locked
record or a declared virtual package (a hand-edited lock that drops a package fails), and the pip
entries are exactly the pip tier's pins for that platform.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from envtiers.conda import lockfile
from envtiers.conda.inputs import Inputs, expected_content_hashes, expected_input_hash, expected_spec_digest
from envtiers.conda.lockfile import RELOCK
from envtiers.conda.repodata import check_against_repodata
from envtiers.conda.spec import load_settings, read_environment
from envtiers.errors import LockfileFormatError
from envtiers.pip import lockfile as pip_lockfile
from envtiers.pip.locker import runtime_lock_path
from envtiers.problems import Problem, problem_from_error
from envtiers.settings import Project


def check_conda(project: Project) -> tuple[list[str], list[Problem]]:
    """Returns the files checked and every problem found. Raises SpecError for an unusable spec."""
    settings = load_settings(project)
    environment = read_environment(settings.environment_file, display=project.rel(settings.environment_file))
    path = settings.lockfile(project)
    shown = project.rel(path)
    try:
        lock = lockfile.read(path, display=shown)
    except LockfileFormatError as error:
        return [shown], [problem_from_error(shown, error)]

    problems: list[Problem] = []
    custom = lock.metadata.custom_metadata
    if custom.get(lockfile.RECORDS_KEY) != lockfile.records_digest(lock.package, lock.metadata.content_hash):
        problems.append(
            Problem(
                shown,
                "its records do not match their recorded digest: a sha256, md5, version, URL or dependency "
                "was edited by hand after locking",
                RELOCK,
            )
        )
    if list(lock.metadata.platforms) != list(project.platforms):
        problems.append(
            Problem(
                shown,
                f"locked for {', '.join(lock.metadata.platforms)}, the project targets {', '.join(project.platforms)}",
                RELOCK,
            )
        )
    pip_locks: dict[str, pip_lockfile.PipLock] = {}
    for platform in project.platforms:
        try:
            pip_lock = pip_lockfile.read(runtime_lock_path(project, platform))
        except LockfileFormatError:
            continue  # the pip tier's check reports it
        if pip_lock.body_intact:
            pip_locks[platform] = pip_lock
    if len(pip_locks) == len(project.platforms):
        wanted = expected_input_hash(project, Inputs(settings, environment, pip_locks))
        if lockfile.stored_input_hash(lock) != wanted:
            problems.append(
                Problem(
                    shown,
                    f"was locked from a different {project.rel(settings.environment_file)}, [conda] settings "
                    "or pip lock (input hash mismatch)",
                    RELOCK,
                )
            )
    inputs = Inputs(settings, environment, pip_locks)
    if custom.get(lockfile.SPEC_KEY) == expected_spec_digest(project, inputs):
        content = dict(lock.metadata.content_hash)  # covered by the records digest above
    else:
        content = expected_content_hashes(project, inputs)
    for platform in project.platforms:
        stored = lock.metadata.content_hash.get(platform)
        if stored != content.get(platform):
            problems.append(
                Problem(
                    shown,
                    f"conda-lock's content hash for {platform} is stale: the spec or virtual "
                    "packages changed since locking",
                    RELOCK,
                )
            )

    by_platform: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"conda": [], "pip": []})
    for package in lock.package:
        by_platform[package.platform][package.manager].append(package)
    problems += check_against_repodata(project, settings, shown, lock.package)
    for platform in project.platforms:
        conda = by_platform[platform]["conda"]
        problems += _check_records(shown, platform, conda)
        unreadable = [p for p in conda if _record(p) is None]
        for package in unreadable:
            problems.append(
                Problem(shown, f"{platform}: {package.name}'s URL names no conda package file: {package.url}", RELOCK)
            )
        conda = [p for p in conda if p not in unreadable]
        for package in conda:
            file_name = package.url.rsplit("/", 1)[-1]
            if not file_name.startswith(f"{package.name}-{package.version}-"):
                problems.append(
                    Problem(
                        shown,
                        f"{platform}: {package.name} is locked as version {package.version}, its file is {file_name}",
                        RELOCK,
                    )
                )
        problems += _check_specs(shown, platform, environment.specs, conda)
        problems += _check_closure(shown, platform, conda, settings.virtual_packages.get(platform, {}))
        if platform in pip_locks:
            problems += _check_pip(project, shown, platform, by_platform[platform]["pip"], pip_locks[platform])
    return [shown], problems


def _record(package: Any) -> Any:
    """A rattler PackageRecord for a locked conda entry (name, version, build from the file name),
    or None when the URL's file name is not `name-version-build.conda|.tar.bz2`."""
    return _record_of(package.name, package.version, package.url, package.platform)


@lru_cache(maxsize=4096)
def _matcher(spec: str) -> Any:
    """rattler's MatchSpec for `spec` (parsed once per check: many records share dependencies)."""
    from rattler import MatchSpec

    return MatchSpec(spec)


@lru_cache(maxsize=4096)
def _record_of(name: str, version: str, url: str, platform: str) -> Any:
    from rattler import BuildString, PackageRecord

    package = SimpleNamespace(name=name, version=version, url=url, platform=platform)
    file_name = package.url.rsplit("/", 1)[-1]
    if not file_name.endswith((".conda", ".tar.bz2")):
        return None
    stem = file_name.removesuffix(".conda").removesuffix(".tar.bz2")
    if stem.count("-") < 2:
        return None
    build = stem.rsplit("-", 2)[-1]
    subdir = package.url.rsplit("/", 2)[-2] if package.url.count("/") >= 2 else package.platform
    try:
        return PackageRecord(package.name, package.version, BuildString(build), 0, subdir)
    except Exception:  # rattler's own errors for a version or name it cannot parse
        return None


def _virtual_record(name: str, text: str, platform: str) -> Any:
    from rattler import BuildString, PackageRecord

    version, _, build = text.partition(" ")
    return PackageRecord(name, version, BuildString(build or "0"), 0, platform)


def _check_records(shown: str, platform: str, conda: Sequence[Any]) -> list[Problem]:
    problems = []
    seen: dict[str, int] = defaultdict(int)
    for package in conda:
        seen[package.name] += 1
        if not package.hash.sha256 or not package.hash.md5:
            problems.append(Problem(shown, f"{platform}: {package.name} {package.version} has no sha256/md5", RELOCK))
    for name, count in sorted(seen.items()):
        if count > 1:
            problems.append(Problem(shown, f"{platform}: {name} is locked {count} times", RELOCK))
    return problems


def _check_specs(shown: str, platform: str, specs: Sequence[str], conda: Sequence[Any]) -> list[Problem]:
    records = [(package, _record(package)) for package in conda]
    problems = []
    for spec in specs:
        matcher = _matcher(spec)
        matched = [package for package, record in records if matcher.matches(record)]
        if len(matched) != 1:
            found = ", ".join(f"{p.name} {p.version}" for p in matched) or "no locked record"
            problems.append(
                Problem(shown, f"{platform}: environment.yml asks for '{spec}', the lock has {found}", RELOCK)
            )
    return problems


def _check_closure(shown: str, platform: str, conda: Sequence[Any], virtual: Mapping[str, str]) -> list[Problem]:
    available: dict[str, list[Any]] = defaultdict(list)
    for package in conda:
        available[package.name].append(_record(package))
    for name, text in virtual.items():
        available[name].append(_virtual_record(name, text, platform))
    problems = []
    for package in conda:
        for name, constraint in sorted(package.dependencies.items()):
            spec = f"{name} {constraint}".strip()
            try:
                matcher = _matcher(spec)
            except Exception:
                problems.append(
                    Problem(shown, f"{platform}: {package.name} has an unreadable dependency '{spec}'", RELOCK)
                )
                continue
            if not any(matcher.matches(record) for record in available.get(name, ())):
                problems.append(
                    Problem(
                        shown,
                        f"{platform}: {package.name} {package.version} depends on '{spec}', which no locked record "
                        "or declared virtual package provides",
                        RELOCK,
                    )
                )
    return problems


def _check_pip(
    project: Project, shown: str, platform: str, entries: Sequence[Any], pip_lock: pip_lockfile.PipLock
) -> list[Problem]:
    pins = {pin.name: pin for pin in pip_lock.pins}
    locked = {entry.name: entry for entry in entries}
    other = project.rel(pip_lock.path)
    problems = []
    for name in sorted(set(pins) | set(locked)):
        pin, entry = pins.get(name), locked.get(name)
        if entry is None:
            problems.append(Problem(shown, f"{platform}: {name}=={pin.version} of {other} has no pip entry", RELOCK))  # type: ignore[union-attr]
        elif pin is None:
            problems.append(Problem(shown, f"{platform}: pip entry {name}=={entry.version} is not in {other}", RELOCK))
        elif pin.version != entry.version:
            problems.append(
                Problem(
                    shown,
                    f"{platform}: pip entry {name}=={entry.version} disagrees with {other} ({name}=={pin.version})",
                    RELOCK,
                )
            )
        elif f"sha256:{entry.hash.sha256}" not in pin.hashes:
            problems.append(
                Problem(
                    shown,
                    f"{platform}: the wheel of pip entry {name}=={entry.version} is not one {other} allows",
                    RELOCK,
                )
            )
    return problems
