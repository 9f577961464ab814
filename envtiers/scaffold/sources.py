"""What an existing project already declares: requirements.txt, pyproject.toml's [project]
dependencies (and chosen optional groups), environment.yml, the Python version, its flows."""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envtiers.errors import InputError
from envtiers.scaffold.imports import pinned_requirements

_PYTHON_SPEC = re.compile(r"^python\s*[=<>~]*\s*(?P<version>3\.\d+)")
# Folders that are never the project's own importable code.
_NOT_CODE = {"envs", "docker", "lockfiles", "tests", "test", "build", "dist", "docs", "flows", "data"}


@dataclass(frozen=True)
class Sources:
    """Everything `envtiers init` found, and where it came from (for the report)."""

    requirements: tuple[str, ...]  # PEP 508 lines of the runtime spec, in the project's order
    read_from: tuple[str, ...]  # the files they were read from
    python: str  # "3.11"
    channels: tuple[str, ...] = ("conda-forge",)
    conda_specs: tuple[str, ...] = ()  # environment.yml's conda packages, python and pip excluded
    packages: tuple[str, ...] = ()  # the project's own top-level packages (shipped to tasks)
    flows: tuple[str, ...] = ()  # files defining a FlowSpec
    pinned_requirements: Path | None = None  # a fully pinned requirements.txt: also preferences
    optional_groups: tuple[str, ...] = ()  # pyproject groups found but not asked for
    notes: tuple[str, ...] = field(default=())


def read_sources(root: Path, *, python: str | None = None, extras: tuple[str, ...] = ()) -> Sources:
    """Read the project at `root`. Raises InputError for a file that is there but unreadable."""
    requirements: list[str] = []
    read_from: list[str] = []
    notes: list[str] = []
    pinned: Path | None = None

    pyproject = _pyproject(root)
    table = pyproject.get("project")
    project_table: dict[str, Any] = table if isinstance(table, dict) else {}
    groups: dict[str, list[str]] = project_table.get("optional-dependencies") or {}
    unknown = sorted(set(extras) - set(groups))
    if unknown:
        raise InputError(
            f"pyproject.toml has no optional group {', '.join(unknown)}",
            fix=f"choose among: {', '.join(sorted(groups)) or '(none)'}",
        )
    if "dependencies" in project_table:
        requirements += [str(r) for r in project_table.get("dependencies") or []]
        for extra in extras:
            requirements += [str(r) for r in groups[extra]]
        read_from.append("pyproject.toml" + (f" (+ {', '.join(extras)})" if extras else ""))

    req_txt = root / "requirements.txt"
    if req_txt.is_file():
        lines = _requirement_lines(req_txt.read_text())
        fully_pinned = bool(lines) and len(pinned_requirements("\n".join(lines))) == len(lines)
        if fully_pinned:
            # pip freeze / pip-compile output lists transitive packages too: their versions are
            # the team's current ones (preferences); as a spec they would freeze the whole tree.
            pinned = req_txt
            if not read_from:
                requirements += [Requirement(line).name for line in lines]
                read_from.append("requirements.txt")
                notes.append("requirements.txt is fully pinned: its names are the spec, its versions preferences")
            else:
                notes.append("requirements.txt is fully pinned: used as version preferences, not as the spec")
        elif not read_from:
            requirements += lines
            read_from.append("requirements.txt")
        else:
            notes.append("requirements.txt ignored: pyproject.toml [project] dependencies are the spec")

    channels: tuple[str, ...] = ("conda-forge",)
    conda_specs: list[str] = []
    env_python = None
    env_file = root / "environment.yml"
    if env_file.is_file():
        channels, conda_specs, pip_entries, env_python = _environment(env_file)
        if pip_entries:
            requirements += pip_entries
        read_from.append("environment.yml")

    requires = project_table.get("requires-python")
    return Sources(
        requirements=tuple(_dedupe(requirements)),
        read_from=tuple(read_from),
        python=python or _python_version(root, env_python),
        channels=channels,
        conda_specs=tuple(conda_specs),
        packages=_packages(root),
        flows=_flows(root),
        pinned_requirements=pinned,
        optional_groups=tuple(sorted(set(groups) - set(extras))),
        notes=(*notes, *([f"pyproject.toml requires-python {requires}"] if requires else [])),
    )


def _pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"pyproject.toml is not valid TOML: {exc}", fix="correct pyproject.toml") from None


def _requirement_lines(text: str) -> list[str]:
    """PEP 508 lines of a requirements file: options (-r, -e, --index-url), hashes and comments dropped."""
    lines = []
    for number, raw in enumerate(text.replace("\\\n", " ").splitlines(), start=1):
        line = raw.split(" #", 1)[0].split("#", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.split(" --hash", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            Requirement(line)
        except InvalidRequirement:
            raise InputError(
                f"requirements.txt:{number}: not a requirement envtiers can lock: {line!r}",
                fix="write it as name[extras]<spec> (no URLs or local paths), then rerun `envtiers init`",
            ) from None
        lines.append(line)
    return lines


def _environment(path: Path) -> tuple[tuple[str, ...], list[str], list[str], str | None]:
    try:
        import yaml
    except ImportError:
        raise InputError(
            "reading environment.yml needs PyYAML", fix="pip install 'envtiers[conda]' (or pyyaml)"
        ) from None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"environment.yml is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError("environment.yml must be a mapping with channels and dependencies")
    channels = tuple(str(c) for c in data.get("channels") or ["conda-forge"] if str(c) != "defaults")
    specs: list[str] = []
    pip_entries: list[str] = []
    python = None
    for entry in data.get("dependencies") or []:
        if isinstance(entry, dict):
            pip_entries += [str(p) for p in entry.get("pip") or [] if not str(p).startswith("-")]
            continue
        text = str(entry).strip()
        match = _PYTHON_SPEC.match(text)
        if match:
            python = match["version"]
        elif canonicalize_name(text.split()[0].split("=")[0]) not in ("python", "pip"):
            specs.append(text)
    return channels or ("conda-forge",), specs, pip_entries, python


def _python_version(root: Path, from_environment: str | None) -> str:
    """.python-version, then environment.yml's python, then the interpreter running envtiers."""
    pinned = root / ".python-version"
    if pinned.is_file():
        text = pinned.read_text().strip().split("\n")[0]
        parts = text.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return f"{parts[0]}.{parts[1]}"
    return from_environment or f"{sys.version_info.major}.{sys.version_info.minor}"


def _packages(root: Path) -> tuple[str, ...]:
    found = []
    for folder in sorted(root.iterdir()):
        code = folder.is_dir() and (folder / "__init__.py").is_file() and folder.name not in _NOT_CODE
        if code and not folder.name.startswith(".") and folder.name != "metaflow_extensions":
            found.append(folder.name)
    return tuple(found)


def _flows(root: Path) -> tuple[str, ...]:
    candidates = [*sorted(root.glob("*.py")), *sorted(root.glob("flows/*.py"))]
    flows = []
    for path in candidates:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if "FlowSpec" in text and "__main__" in text:
            flows.append(path.relative_to(root).as_posix())
    return tuple(flows)


def _dedupe(requirements: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for line in requirements:
        name = canonicalize_name(Requirement(line).name)
        if name not in seen:
            seen.add(name)
            kept.append(line)
    return kept
