"""`envtiers init` and `envtiers import`: what they read, write and print, as library calls."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envtiers.errors import InputError
from envtiers.platforms import get_platform
from envtiers.scaffold import render, writer
from envtiers.scaffold.imports import AUTO_IMPORTS, Imported, read_lock, render_preferences
from envtiers.scaffold.sources import Sources, read_sources

TIERS = ("pip", "conda", "image")
PREFERENCES = "envs/preferences.txt"


@dataclass(frozen=True)
class InitResult:
    root: Path
    sources: Sources
    tiers: tuple[str, ...]
    imported: Imported | None
    changes: list[writer.Change]
    next_commands: tuple[str, ...]
    hints: tuple[str, ...]


def init(
    root: Path,
    *,
    platforms: Sequence[str] = ("linux-64", "osx-arm64"),
    tiers: Sequence[str] | None = None,
    extras: Sequence[str] = (),
    python: str | None = None,
    index_url: str | None = None,
    registry: str | None = None,
    import_from: Path | None = None,
    force: bool = False,
) -> InitResult:
    """Set up envtiers in the project at `root` (see the README, "Use envtiers in your project").

    `tiers` defaults to pip and image, plus conda when the project has an environment.yml: the
    conda tier needs `envtiers[conda]` and a reachable conda channel, which a pip-only team may
    not have. Raises InputError for unusable options or files, writer.ConflictError (writing
    nothing) when a file exists with other content and `force` is off."""
    root = root.resolve()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", fix="run `envtiers init` inside the project's folder")
    for name in platforms:
        get_platform(name)
    if not platforms:
        raise InputError("--platforms lists no platform", fix="e.g. --platforms linux-64,osx-arm64")
    sources = read_sources(root, python=python, extras=tuple(extras))
    chosen = tuple(tiers) if tiers else ("pip", "image", *(("conda",) if (root / "environment.yml").is_file() else ()))
    unknown = sorted(set(chosen) - set(TIERS))
    if unknown or "pip" not in chosen:
        raise InputError(
            f"--tiers must include pip and name only {', '.join(TIERS)} (got {', '.join(chosen)})",
            fix="e.g. --tiers pip,conda,image",
        )
    imported = _imported(root, sources, import_from)
    options = render.Options(
        platforms=tuple(platforms),
        index_url=index_url,
        registry=registry,
        name=_image_name(root.name),
        metaflow=_metaflow_requirement(),
        makefile=_makefile_is_ours(root / "Makefile"),
        conda="conda" in chosen,
    )
    files = render.render_files(sources, options, imported)
    changes = writer.apply(root, files, force=force)
    flow = sources.flows[0] if sources.flows else "flow.py"
    hints = []
    makefile = root / "Makefile"
    if makefile.exists() and render.MAKEFILE_INCLUDE not in makefile.read_text():
        hints.append(f"add `include {render.MAKEFILE_INCLUDE}` to your Makefile for make lock/check/image/run/env")
    if sources.optional_groups:
        groups = ", ".join(sources.optional_groups)
        hints.append(f"pyproject.toml optional groups not in the spec: {groups} (add with --extra NAME)")
    hints += list(sources.notes)
    return InitResult(
        root=root,
        sources=sources,
        tiers=chosen,
        imported=imported,
        changes=changes,
        next_commands=("envtiers lock", "envtiers check", f"python {flow} --environment=envtiers-pip run"),
        hints=tuple(hints),
    )


def import_preferences(root: Path, source: Path, *, force: bool = False) -> tuple[Imported, list[writer.Change]]:
    """`envtiers import FILE`: write envs/preferences.txt from another tool's lock, for the next
    first lock. Raises InputError for an unreadable file, ConflictError as `init` does."""
    if not source.is_file():
        raise InputError(f"{source}: no such file", fix="pass a uv.lock, conda-lock.yml or pinned requirements.txt")
    imported = read_lock(source, display=_display(root, source))
    changes = writer.apply(
        root, {PREFERENCES: render_preferences(imported)}, force=force, command=f"envtiers import {source}"
    )
    return imported, changes


def _imported(root: Path, sources: Sources, explicit: Path | None) -> Imported | None:
    if explicit is not None:
        path = explicit if explicit.is_absolute() else Path.cwd() / explicit
        if not path.is_file():
            raise InputError(
                f"--from {explicit}: no such file", fix="pass a uv.lock, conda-lock.yml or requirements.txt"
            )
        return read_lock(path, display=_display(root, path))
    for name in AUTO_IMPORTS:
        if (root / name).is_file():
            return read_lock(root / name, display=name)
    if sources.pinned_requirements is not None:
        return read_lock(sources.pinned_requirements, display="requirements.txt")
    return None


def _makefile_is_ours(path: Path) -> bool:
    """Write a Makefile only where there is none, or where init wrote the one there."""
    return not path.exists() or path.read_text().startswith(render.MAKEFILE_HEADER)


def _display(root: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _image_name(folder: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.lower()).strip("-._")
    return name or "project"


def _metaflow_requirement() -> str:
    """`metaflow>=X.Y` of the Metaflow envtiers runs beside, so steps and launcher agree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("metaflow").split(".")
    except PackageNotFoundError:
        return "metaflow"
    return f"metaflow>={found[0]}.{found[1]}" if len(found) >= 2 else "metaflow"
