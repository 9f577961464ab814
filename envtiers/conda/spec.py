"""The conda tier's inputs: `envs/environment.yml` and the `[conda]` table of envs/tiers.toml.

environment.yml holds only conda specs: the tier's Python packages are the pip tier's lock for the
same platform (pip entries of the conda lock), so a `pip:` section is refused rather than ignored.
Mirrors change where channel metadata and packages are read, never the URLs recorded in the lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envtiers.errors import SettingsError, SpecError, ToolError
from envtiers.platforms import GLIBC_FLOOR, MACOS_FLOOR
from envtiers.settings import SETTINGS_FILE, Project

DEFAULT_CHANNEL_BASE = "https://conda.anaconda.org"
LOCKFILE_NAME = "conda-lock.yml"
# Overrides every mirror of the settings with "" (none: the live channels) or "NAME=URL,...".
MIRROR_VARIABLE = "ENVTIERS_CONDA_MIRRORS"


@dataclass(frozen=True)
class EnvironmentSpec:
    path: Path
    channels: tuple[str, ...]
    specs: tuple[str, ...]

    def normalised(self) -> dict[str, list[str]]:
        """What the input hash covers: channel order matters (priority), spec order does not."""
        return {"channels": list(self.channels), "specs": sorted(" ".join(s.split()) for s in self.specs)}


@dataclass(frozen=True)
class CondaSettings:
    environment_file: Path
    # platform -> {virtual package name: version}; only these are ever solved against, never the host's.
    virtual_packages: dict[str, dict[str, str]]
    # channel base URL -> the mirror as written (a URL, or a path relative to the project root);
    # resolved only where metadata or packages are read (`mirror_urls`), so `check` never needs it.
    mirrors: dict[str, str]

    def lockfile(self, project: Project) -> Path:
        return project.lockfiles_dir / LOCKFILE_NAME


def channel_url(channel: str) -> str:
    """The canonical base URL of a channel given by name (`conda-forge`) or URL."""
    if "://" in channel:
        return channel.rstrip("/")
    return f"{DEFAULT_CHANNEL_BASE}/{channel.strip('/')}"


def default_virtual_packages(project: Project, platform: str) -> dict[str, str]:
    cuda = project.cuda_version or ""
    if platform.startswith("linux"):
        packages = {"__glibc": GLIBC_FLOOR, "__unix": "0", "__linux": "0"}
        if cuda:
            packages["__cuda"] = cuda
        return packages
    if platform.startswith("osx"):
        return {"__osx": MACOS_FLOOR, "__unix": "0"}
    return {}


def is_configured(project: Project) -> bool:
    """Whether the project uses the conda tier at all: it has an environment file."""
    return load_settings(project).environment_file.is_file()


def load_settings(project: Project) -> CondaSettings:
    """The `[conda]` settings with defaults. Raises SettingsError for malformed values."""
    section = project.conda
    environment_file = project.envs_dir / section.environment
    declared = section.virtual_packages
    virtual: dict[str, dict[str, str]] = {}
    for platform in project.platforms:
        packages = declared.get(platform)
        if packages is None:
            virtual[platform] = default_virtual_packages(project, platform)
        elif isinstance(packages, dict) and all(
            str(k).startswith("__") and isinstance(v, str | int | float) and not isinstance(v, bool)
            for k, v in packages.items()
        ):
            virtual[platform] = {str(k): str(v) for k, v in packages.items()}
        else:
            raise SettingsError(
                f"{SETTINGS_FILE}: [conda.virtual_packages] {platform} must map names like __glibc to versions",
                fix='e.g. linux-64 = { __glibc = "2.28", __unix = "0", __linux = "0" }',
            )
    return CondaSettings(environment_file, virtual, _mirrors(section.mirrors))


def _mirrors(raw: Any) -> dict[str, str]:
    override = os.environ.get(MIRROR_VARIABLE)
    if override is not None:
        raw = dict(item.split("=", 1) for item in override.split(",") if "=" in item)
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise SettingsError(
            f"{SETTINGS_FILE}: [conda.mirrors] must map channel names or URLs to URLs or folders",
            fix='e.g. conda-forge = "https://conda.example.com/conda-forge"',
        )
    return {channel_url(str(channel).strip()): str(target).strip() for channel, target in raw.items()}


def mirror_urls(project: Project, settings: CondaSettings) -> dict[str, str]:
    """channel base URL -> mirror base URL. Raises SettingsError for a mirror folder that is missing."""
    return {channel: _mirror_url(project, target) for channel, target in settings.mirrors.items()}


def _mirror_url(project: Project, target: str) -> str:
    """A URL as is; a plain path (relative to the project root) as a file:// URL of a folder that exists."""
    if "://" in target:
        return target.rstrip("/")
    folder = (project.root / target).resolve()
    if not folder.is_dir():
        raise SettingsError(
            f"{SETTINGS_FILE}: the conda mirror folder {target} does not exist ({folder})",
            fix=f"remove it from [conda.mirrors] to use the live channel, or set {MIRROR_VARIABLE}=''",
        )
    return folder.as_uri()


def read_environment(path: Path, *, display: str) -> EnvironmentSpec:
    """Parse environment.yml. Raises SpecError naming what is wrong (ToolError without the conda extra)."""
    require_conda_extra(display)
    import yaml

    example = "channels: [conda-forge] and dependencies: ['python 3.11.*', pip] (see the README)"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SpecError(
            f"{display} not found", fix="create it with `channels:` and `dependencies:` (see the README)"
        ) from None
    except IsADirectoryError:
        raise SpecError(
            f"{display} is a folder", fix="point [conda] environment in envs/tiers.toml at a file"
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{display} is not UTF-8 text (byte {exc.start})", fix=f"save {display} as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SpecError(
            f"{display} is not valid YAML{where}: {str(exc).splitlines()[0]}",
            fix=f"correct the YAML at the line named; {display} holds {example}",
        ) from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{display} must be a mapping with channels and dependencies, found {type(data).__name__}",
            fix=f"write it as {example}",
        )
    channels = data.get("channels") or []
    dependencies = data.get("dependencies") or []
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise SpecError(
            f"{display}: channels must be a non-empty list of names or URLs", fix="e.g. channels: [conda-forge]"
        )
    if not isinstance(dependencies, list) or not dependencies:
        raise SpecError(
            f"{display}: dependencies must be a non-empty list", fix="e.g. dependencies: ['python 3.11.*', pip]"
        )
    specs = []
    for entry in dependencies:
        if isinstance(entry, dict) and "pip" in entry:
            raise SpecError(
                f"{display}: a pip: section is not used by the conda tier",
                fix="remove it: the conda lock's pip entries are the pip tier's lock (envs/requirements.in)",
            )
        if not isinstance(entry, str) or not entry.strip():
            raise SpecError(
                f"{display}: dependency {entry!r} must be a conda match spec string",
                fix="write it like 'numpy >=1.26' (quoted when it starts with a symbol)",
            )
        specs.append(_validated(entry.strip(), display))
    return EnvironmentSpec(path, tuple(channels), tuple(specs))


def require_conda_extra(display: str) -> None:
    """The conda tier runs py-rattler and conda-lock in-process; an installed envtiers without its
    `conda` extra (pip/image-only teams) gets a clear error, not an ImportError."""
    import importlib.util

    missing = [name for name in ("rattler", "conda_lock", "yaml") if importlib.util.find_spec(name) is None]
    if missing:
        raise ToolError(
            f"{display} configures the conda tier, but this envtiers has no {', '.join(missing)} installed",
            fix="pip install 'envtiers[conda]' (or remove the file to use only the pip and image tiers)",
        )


def _validated(spec: str, display: str) -> str:
    from rattler import MatchSpec

    try:
        MatchSpec(spec)
    except Exception as exc:  # rattler raises its own InvalidMatchSpecError
        raise SpecError(
            f"{display}: {spec!r} is not a valid conda match spec: {exc}",
            fix="write it as `name`, `name 1.2.*` or `name >=1.2,<2` (conda match spec syntax)",
        ) from None
    return spec
