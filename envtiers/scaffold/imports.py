"""Versions a team already runs, read from other tools' lockfiles: `uv.lock`, `conda-lock.yml`, or a
pinned `requirements.txt` (pip freeze, pip-compile). They become envs/preferences.txt, which the
first `envtiers lock` of each lockfile hands to uv as its preferred versions (see
envtiers.pip.preferences): the team keeps its versions wherever the spec allows them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envtiers.errors import InputError

# Found in the project root by `envtiers init` when no --from is given, in this order.
AUTO_IMPORTS = ("uv.lock", "conda-lock.yml")
# Conda packages that are the interpreter or the installer, never a pip preference.
_CONDA_ONLY = {"python", "pip", "setuptools", "wheel"}


@dataclass(frozen=True)
class Imported:
    source: str  # the file, as shown to the user
    pins: dict[str, str]  # canonical name -> version


def read_lock(path: Path, *, display: str, platform: str = "linux-64") -> Imported:
    """Pins from a uv.lock, a conda-lock.yml (packages of `platform`) or a pinned requirements file.

    Raises InputError for a file that cannot be read or parsed, naming it."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{display} cannot be read: {exc}", fix="pass a uv.lock, conda-lock.yml or requirements.txt"
        ) from None
    if path.name.endswith(".lock") or path.suffix == ".toml":
        pins = _uv_lock(text, display)
    elif path.suffix in (".yml", ".yaml"):
        pins = _conda_lock(text, display, platform)
    else:
        pins = pinned_requirements(text)
        if not pins:
            raise InputError(f"{display} pins nothing with ==", fix="pass a lockfile or a pinned requirements file")
    return Imported(display, dict(sorted(pins.items())))


def _uv_lock(text: str, display: str) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{display} is not valid TOML: {exc}") from None
    versions: dict[str, set[str]] = {}
    for package in data.get("package", []):
        source = package.get("source", {})
        # The project itself (and workspace members) are not something to prefer a version of.
        if not isinstance(package, dict) or "version" not in package or {"virtual", "editable"} & set(source):
            continue
        versions.setdefault(canonicalize_name(str(package["name"])), set()).add(str(package["version"]))
    # A package locked at two versions (forked by markers) has no single preference: uv decides.
    return {name: found.pop() for name, found in versions.items() if len(found) == 1}


def _conda_lock(text: str, display: str, platform: str) -> dict[str, str]:
    try:
        import yaml
    except ImportError:
        raise InputError(f"reading {display} needs PyYAML", fix="pip install 'envtiers[conda]' (or pyyaml)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{display} is not valid YAML: {str(exc).splitlines()[0]}") from None
    packages = data.get("package") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        raise InputError(f"{display} has no `package:` list (not a conda-lock lockfile)")
    pins: dict[str, str] = {}
    for package in packages:
        if not isinstance(package, dict) or package.get("platform") != platform:
            continue
        name = canonicalize_name(str(package.get("name", "")))
        version = str(package.get("version", ""))
        if name in _CONDA_ONLY or not _is_pep440(version):
            continue
        # pip entries win over a conda package of the same name: they are what pip installed.
        if package.get("manager") == "pip" or name not in pins:
            pins[name] = version
    return pins


def pinned_requirements(text: str) -> dict[str, str]:
    """`name==version` lines of a requirements file (hashes, options and markers ignored)."""
    pins: dict[str, str] = {}
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split("#", 1)[0].split(" --hash", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if len(exact) == 1 and "*" not in exact[0]:
            pins[canonicalize_name(requirement.name)] = exact[0]
    return pins


def _is_pep440(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def render_preferences(imported: Imported) -> str:
    lines = [
        f"# Versions imported from {imported.source} by envtiers. The first `envtiers lock` of each",
        "# lockfile prefers them where envs/requirements.in allows; later locks prefer the lockfile",
        "# itself. Not part of any input hash: delete this file once the locks are committed.",
    ]
    lines += [f"{name}=={version}" for name, version in imported.pins.items()]
    return "\n".join(lines) + "\n"
