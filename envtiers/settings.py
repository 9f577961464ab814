"""Project layout and settings: every path and setting the toolkit uses derives from here.

`envs/tiers.toml` is read once into typed sections (`Project.pip`, `.conda`, `.image`, `.cuda`,
`.flow`), validated on read: a value of the wrong type is a SettingsError naming the key and the
type expected; an unknown section or key is a warning naming the closest valid one (a typo must not
silently fall back to a default). One precedence for every setting: a CLI option, then its
environment variable (`VARIABLES` lists them all), then the file, then the default.

The project root is the nearest folder above the working directory that holds `envs/tiers.toml`
(or `ENVTIERS_PROJECT`).
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtiers.errors import SettingsError
from envtiers.platforms import PLATFORMS

log = logging.getLogger(__name__)

SETTINGS_FILE = Path("envs") / "tiers.toml"

# Every variable envtiers reads, with what it overrides. The ones marked True point envtiers or uv
# at another project, index, cache or interpreter: harnesses that must see only their own inputs
# (the tests, the benchmarks) clear them (REDIRECTING_VARIABLES).
VARIABLES: dict[str, tuple[str, bool]] = {
    "ENVTIERS_PROJECT": ("the project root (--project)", True),
    "ENVTIERS_CACHE_DIR": ("where environments are cached (default ~/.cache/envtiers)", True),
    "ENVTIERS_INDEX_URL": ("[pip] index_url (--index-url)", True),
    "ENVTIERS_UV": ("the uv binary", True),
    "ENVTIERS_CONDA_MIRRORS": ('[conda.mirrors], as "NAME=URL,..." ("" for none)', True),
    "ENVTIERS_REGISTRY": ("[image] registry (--registry)", False),
    "REGISTRY": ("[image] registry, after ENVTIERS_REGISTRY", False),
    "ENVTIERS_BASE_IMAGE": ("[image] base (--base-image)", False),
    "BASE_IMAGE": ("[image] base, after ENVTIERS_BASE_IMAGE", False),
    "ENVTIERS_REGISTRY_USER": ("the registry login's user", False),
    "ENVTIERS_REGISTRY_PASSWORD": ("the registry login's password", False),
    "ENVTIERS_DOCKER_GPUS": ("docker run --gpus for local image-tier tasks", False),
    "ENVTIERS_OSV_URL": ("the OSV API `envtiers audit --service osv` asks", True),
    "ENVTIERS_AUDIT_DB": ("[audit] db (--db)", True),
    "ENVTIERS_SHIP_ENVIRONMENTS": ("[remote] ship_environments (0: remote tasks install from the index)", False),
    "ENVTIERS_SHIPPED_FILES": ("a folder of shipped locked files: the conda lock's pip entries install from it", True),
}
REDIRECTING_VARIABLES = (
    *(name for name, (_, redirecting) in VARIABLES.items() if redirecting),
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

# The schema of envs/tiers.toml: section -> key -> expected type name. "table" sections hold
# free-form sub-tables validated by their own reader. Add a key here when you add a setting.
SCHEMA: dict[str, dict[str, str]] = {
    "project": {"python": "version", "platforms": "list[str]"},
    "pip": {
        "spec": "str",
        "overrides": "str",
        "dev_spec": "str",
        "tools_spec": "str",
        "index_url": "str",
        "find_links": "list[str]",
    },
    "conda": {"environment": "str", "virtual_packages": "table", "mirrors": "table"},
    "cuda": {"version": "str"},
    "image": {"registry": "str", "repository": "str", "base": "str", "code": "list[str]", "source": "str"},
    "flow": {"include": "list[str]"},
    "audit": {"db": "str", "ignore": "list[table]"},
    "remote": {"ship_environments": "bool"},
}


def env(name: str) -> str | None:
    """The value of one of `VARIABLES` (None when unset)."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not one of envtiers.settings.VARIABLES: add it there")
    return os.environ.get(name)


@dataclass(frozen=True)
class PipSettings:
    spec: Path
    overrides: Path | None
    dev_spec: Path | None
    tools_spec: Path | None
    index_url: str | None = None
    find_links: tuple[str, ...] = ()


@dataclass(frozen=True)
class CondaSection:
    """[conda] as written; `envtiers.conda.spec.load_settings` resolves it for a project."""

    environment: str = "environment.yml"
    virtual_packages: Mapping[str, Any] = field(default_factory=dict)
    mirrors: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageSection:
    registry: str | None = None
    repository: str | None = None
    base: str | None = None
    code: tuple[str, ...] | None = None  # None: the [flow] include
    source: str | None = None


@dataclass(frozen=True)
class FlowSection:
    # The project's own packages the steps import: the one list the code package, the image's
    # COPY and the image tag all walk (see `project_files`).
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Project:
    root: Path
    python: str
    platforms: tuple[str, ...]
    pip: PipSettings
    cache_dir: Path
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    conda: CondaSection = field(default_factory=CondaSection)
    image: ImageSection = field(default_factory=ImageSection)
    cuda_version: str | None = None
    flow: FlowSection = field(default_factory=FlowSection)

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
    explicit = env("ENVTIERS_PROJECT")
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
    explicit = env("ENVTIERS_CACHE_DIR")
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
    """Read and validate `envs/tiers.toml` under `root` (found from the cwd when None).

    Raises SettingsError for a missing, unreadable or malformed settings file.
    """
    root = (root or find_root()).resolve()
    path = root / SETTINGS_FILE
    raw = _read_toml(path, root)
    _validate(raw)

    project_section = raw.get("project", {})
    python = project_section.get("python", "3.11")
    platforms = tuple(project_section.get("platforms", ["linux-64", "osx-arm64"]))
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise SettingsError(
            f"{SETTINGS_FILE}: unknown platform(s) {unknown or '(none listed)'}",
            fix=f"use some of {', '.join(sorted(PLATFORMS))}",
        )

    pip_section = raw.get("pip", {})
    envs = root / "envs"

    def optional(key: str, default: str) -> Path | None:
        value = pip_section.get(key, default)
        if not value:
            return None
        candidate = envs / value
        return candidate if candidate.exists() else None

    pip = PipSettings(
        spec=envs / pip_section.get("spec", "requirements.in"),
        overrides=optional("overrides", "overrides.txt"),
        dev_spec=optional("dev_spec", "dev-requirements.in"),
        tools_spec=optional("tools_spec", "tools.in"),
        index_url=index_url or env("ENVTIERS_INDEX_URL") or pip_section.get("index_url"),
        find_links=tuple(pip_section.get("find_links", ())),
    )
    conda = raw.get("conda", {})
    image = raw.get("image", {})
    cuda = raw.get("cuda", {}).get("version")
    return Project(
        root=root,
        python=python,
        platforms=platforms,
        pip=pip,
        cache_dir=cache_dir or default_cache_dir(),
        raw=raw,
        conda=CondaSection(
            environment=conda.get("environment", "environment.yml"),
            virtual_packages=conda.get("virtual_packages", {}),
            mirrors=conda.get("mirrors", {}),
        ),
        image=ImageSection(
            registry=image.get("registry"),
            repository=image.get("repository"),
            base=image.get("base"),
            code=tuple(image["code"]) if "code" in image else None,
            source=image.get("source"),
        ),
        cuda_version=cuda.strip() or None if cuda is not None else None,
        flow=FlowSection(include=tuple(raw.get("flow", {}).get("include", ()))),
    )


def _read_toml(path: Path, root: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SettingsError(
            f"{SETTINGS_FILE} not found in {root}",
            fix="create it (see the README's 'Settings' section) or pass --project DIR",
        ) from None
    except IsADirectoryError:
        raise SettingsError(f"{SETTINGS_FILE} is a folder, not a file", fix="replace it with a TOML file") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{SETTINGS_FILE} is not UTF-8 text (byte {exc.start})", fix="save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"{SETTINGS_FILE} cannot be read: {exc.strerror}", fix="check its permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            f"{SETTINGS_FILE} is not valid TOML: {exc}",
            fix='fix the line it names (strings need quotes: python = "3.11")',
        ) from None


def _validate(raw: Mapping[str, Any]) -> None:
    """Type-check every known key; warn about unknown sections and keys with the closest valid name."""
    for section, value in raw.items():
        keys = SCHEMA.get(section)
        if keys is None:
            _warn_unknown(f"section [{section}]", section, SCHEMA)
            continue
        if not isinstance(value, dict):
            raise SettingsError(
                f"{SETTINGS_FILE}: [{section}] must be a table, got {_kind(value)} {value!r}",
                fix=f"write it as a [{section}] section with keys {', '.join(keys)}",
            )
        for key, item in value.items():
            expected = keys.get(key)
            if expected is None:
                _warn_unknown(f"key {key!r} in [{section}]", key, keys)
            elif expected == "version" and not _matches(item, expected):
                number = " (a TOML number: 3.10 reads as 3.1)" if isinstance(item, int | float) else ""
                raise SettingsError(
                    f"{SETTINGS_FILE}: {section}.{key} must look like '3.11', got {item!r}{number}",
                    fix=_example(section, key, expected),
                )
            elif not _matches(item, expected):
                raise SettingsError(
                    f"{SETTINGS_FILE}: [{section}] {key} must be {_describe(expected)}, got {_kind(item)} {item!r}",
                    fix=_example(section, key, expected),
                )


def _matches(value: Any, expected: str) -> bool:
    if expected == "str":
        return isinstance(value, str)
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if expected == "table":
        return isinstance(value, dict)
    if expected == "list[table]":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if expected == "version":
        return isinstance(value, str) and _looks_like_version(value)
    raise AssertionError(f"unknown schema type {expected}")


def _describe(expected: str) -> str:
    return {
        "str": "a string",
        "bool": "true or false",
        "list[str]": "a list of strings",
        "table": "a table",
        "list[table]": "a list of tables",
        "version": 'a quoted version like "3.11"',
    }[expected]


def _example(section: str, key: str, expected: str) -> str:
    examples = {
        "str": f'{key} = "..."',
        "bool": f"{key} = true",
        "list[str]": f'{key} = ["..."]',
        "table": f"[{section}.{key}]",
        "list[table]": f"[[{section}.{key}]]",
    }
    if expected == "version":
        return f'write it quoted: [{section}] {key} = "3.11" (a bare 3.10 is the number 3.1)'
    return f"write it as {examples[expected]} under [{section}]"


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _warn_unknown(what: str, name: str, known: Mapping[str, Any]) -> None:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    log.warning("envtiers: warning: %s: unknown %s is ignored%s", SETTINGS_FILE, what, hint)


def _looks_like_version(text: str) -> bool:
    parts = text.split(".")
    return 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)
