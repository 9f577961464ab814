"""Offline consistency check of the pip tier's lockfiles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envtiers.errors import LockfileFormatError
from envtiers.pip import lockfile
from envtiers.pip.locker import LockSet, expected_input_hash, lock_sets
from envtiers.platforms import get_platform
from envtiers.problems import Problem, problem_from_error
from envtiers.settings import Project
from envtiers.spec import read_spec


def check_pip(project: Project) -> tuple[list[str], list[Problem]]:
    """Returns the files checked and every problem found in them."""
    checked: list[str] = []
    problems: list[Problem] = []
    runtime_pins: dict[str, dict[str, str]] = {}
    for lock_set in lock_sets(project):
        shown = project.rel(lock_set.output)
        checked.append(shown)
        found, pins = _check_one(project, lock_set, shown)
        problems += found
        if lock_set.kind == "runtime" and pins is not None:
            runtime_pins[lock_set.platform] = pins
        if lock_set.kind == "dev" and pins is not None and lock_set.platform in runtime_pins:
            for name, version in sorted(pins.items()):
                runtime_version = runtime_pins[lock_set.platform].get(name)
                if runtime_version is not None and runtime_version != version:
                    problems.append(
                        Problem(
                            shown,
                            f"{name}=={version} disagrees with {project.rel(lock_set.constraint.output)}"  # type: ignore[union-attr]
                            f" ({name}=={runtime_version})",
                        )
                    )
    return checked, problems


def _check_one(project: Project, lock_set: LockSet, shown: str) -> tuple[list[Problem], dict[str, str] | None]:
    try:
        lock = lockfile.read(lock_set.output, display=shown)
    except LockfileFormatError as error:
        return [problem_from_error(shown, error)], None
    problems: list[Problem] = []
    header = lock.header
    expected = {"kind": lock_set.kind, "platform": lock_set.platform, "python": project.python}
    actual = {"kind": header.kind, "platform": header.platform, "python": header.python}
    for key, value in expected.items():
        if actual[key] != value:
            problems.append(Problem(shown, f"header says {key} {actual[key]!r}, expected {value!r}"))
    if not lock.body_intact:
        problems.append(
            Problem(
                shown,
                "content does not match its recorded digest: the file was edited by hand or truncated",
            )
        )
    try:
        wanted = expected_input_hash(project, lock_set)
    except LockfileFormatError:
        wanted = None  # the constraint lock is broken; reported on its own file
    if wanted is not None and wanted != header.input_hash:
        sources = [project.rel(lock_set.spec)]
        if lock_set.overrides is not None:
            sources.append(project.rel(lock_set.overrides))
        if lock_set.constraint is not None:
            sources.append(project.rel(lock_set.constraint.output))
        problems.append(
            Problem(
                shown, f"stale: locked from different inputs than the current {', '.join(sources)} or envs/tiers.toml"
            )
        )
    try:
        # Parse with the displayed path: errors then read `lockfiles/pip/x.txt:12: ...`.
        pins = lockfile.parse_body(lock.body, path=Path(shown), first_line=lock.first_line)
    except LockfileFormatError as error:
        return [*problems, problem_from_error(shown, error)], None

    counts = Counter(pin.name for pin in pins)
    for name, count in sorted(counts.items()):
        if count > 1 and lock_set.platform != "universal":
            problems.append(Problem(shown, f"{name} is pinned {count} times"))
    for pin in pins:
        if not pin.hashes:
            problems.append(Problem(shown, f"{pin.name}=={pin.version} (line {pin.line}) has no hash"))
    by_name: dict[str, list[str]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin.version)
    problems += _unsatisfied(project, lock_set, shown, by_name)
    return problems, {name: versions[0] for name, versions in by_name.items()}


def _unsatisfied(project: Project, lock_set: LockSet, shown: str, by_name: dict[str, list[str]]) -> list[Problem]:
    """Requirements of the spec (markers evaluated for this platform) that no single pin satisfies."""
    spec = read_spec(lock_set.spec, display=project.rel(lock_set.spec))
    environment = (
        get_platform(lock_set.platform).marker_environment(project.python) if lock_set.platform != "universal" else None
    )
    problems = []
    for requirement in spec.requirements:
        if environment is not None and not _applies(requirement.marker, environment):
            continue
        name = canonicalize_name(requirement.name)
        versions = by_name.get(name, [])
        if not versions:
            problems.append(
                Problem(shown, f"{_display(requirement)} is required by {project.rel(lock_set.spec)} but not pinned")
            )
            continue
        matching = [v for v in versions if requirement.specifier.contains(v, prereleases=True)]
        if not matching:
            problems.append(
                Problem(
                    shown,
                    f"{name}=={versions[0]} does not satisfy {_display(requirement)} from {project.rel(lock_set.spec)}",
                )
            )
    return problems


def _applies(marker: Marker | None, environment: dict[str, str]) -> bool:
    if marker is None:
        return True
    return marker.evaluate({**environment, "extra": ""})


def _display(requirement: Requirement) -> str:
    text = f"{requirement.name}{requirement.specifier}"
    return text
