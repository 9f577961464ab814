"""Project layout and settings: every path the toolkit uses derives from here.

Settings come from, in order: a CLI option, an environment variable, `envs/tiers.toml`, a
default. The project root is the nearest folder above the working directory that holds
`envs/tiers.toml` (or `ENVTIERS_PROJECT`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtiers.errors import SettingsError
from envtiers.platforms import PLATFORMS

SETTINGS_FILE = Path("envs") / "tiers.toml"

# Variables that point envtiers or uv at another project, index, cache or interpreter. Harnesses
# that must see only their own inputs (the tests, the benchmarks) clear these first.
REDIRECTING_VARIABLES = (
    "ENVTIERS_PROJECT",
    "ENVTIERS_CACHE_DIR",
    "ENVTIERS_INDEX_URL",
    "ENVTIERS_UV",
    "ENVTIERS_OSV_URL",
    "ENVTIERS_AUDIT_DB",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_OFFLINE",
    "UV_NO_CACHE",
    "UV_CACHE_DIR",
    "UV_PYTHON",
    "UV_HTTP_RETRIES",
    "VIRTUAL_ENV",
)


@dataclass(frozen=True)
class PipSettings:
    spec: Path
    overrides: Path | None
    dev_spec: Path | None
    tools_spec: Path | None
    index_url: str | None = None
    find_links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Project:
    root: Path
    python: str
    platforms: tuple[str, ...]
    pip: PipSettings
    cache_dir: Path
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def lockfiles_dir(self) -> Path:
        return self.root / "lockfiles"

    @property
    def pip_lock_dir(self) -> Path:
        return self.lockfiles_dir / "pip"

    def rel(self, path: Path) -> str:
        """`path` relative to the project root, for messages."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def find_root(start: Path | None = None) -> Path:
    explicit = os.environ.get("ENVTIERS_PROJECT")
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SETTINGS_FILE).is_file():
            return folder
    raise SettingsError(
        f"no {SETTINGS_FILE} found in {here} or any folder above it",
        fix="run envtiers from inside the project, or pass --project DIR",
    )


def default_cache_dir() -> Path:
    explicit = os.environ.get("ENVTIERS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "envtiers").resolve()


def load_project(
    root: Path | None = None,
    *,
    index_url: str | None = None,
    cache_dir: Path | None = None,
) -> Project:
    """Read `envs/tiers.toml` under `root` (found from the cwd when None).

    Raises SettingsError for a missing or malformed settings file.
    """
    root = (root or find_root()).resolve()
    path = root / SETTINGS_FILE
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(
            f"{SETTINGS_FILE} not found in {root}",
            fix="create it (see the README's 'Settings' section) or pass --project DIR",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{SETTINGS_FILE} is not valid TOML: {exc}") from None

    project_section = _table(raw, "project")
    python = str(project_section.get("python", "3.11"))
    if not _looks_like_version(python):
        raise SettingsError(f"{SETTINGS_FILE}: project.python must look like '3.11', got {python!r}")
    platforms = tuple(project_section.get("platforms", ["linux-64", "osx-arm64"]))
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise SettingsError(
            f"{SETTINGS_FILE}: unknown platform(s) {unknown or '(none listed)'}",
            fix=f"use some of {', '.join(sorted(PLATFORMS))}",
        )

    pip_section = _table(raw, "pip")
    envs = root / "envs"

    def optional(key: str, default: str) -> Path | None:
        value = pip_section.get(key, default)
        if not value:
            return None
        candidate = envs / value
        return candidate if candidate.exists() or key == "spec" else None

    pip = PipSettings(
        spec=envs / pip_section.get("spec", "requirements.in"),
        overrides=optional("overrides", "overrides.txt"),
        dev_spec=optional("dev_spec", "dev-requirements.in"),
        tools_spec=optional("tools_spec", "tools.in"),
        index_url=index_url or os.environ.get("ENVTIERS_INDEX_URL") or pip_section.get("index_url"),
        find_links=tuple(pip_section.get("find_links", ())),
    )
    return Project(
        root=root,
        python=python,
        platforms=platforms,
        pip=pip,
        cache_dir=cache_dir or default_cache_dir(),
        raw=raw,
    )


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SettingsError(f"{SETTINGS_FILE}: [{key}] must be a table")
    return value


def _looks_like_version(text: str) -> bool:
    parts = text.split(".")
    return 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)
