"""The project's own files that travel with a flow: one walk, one filter, for every consumer.

Metaflow's code package (the extension's `add_to_package`), the image's `COPY` (docker/Dockerfile
with .dockerignore) and the image's content tag all list files through `project_files`, so the
code a remote task runs, the code the image holds and the code its tag names cannot disagree.
Skipped: caches (`__pycache__`, `*.pyc`, tool caches) and dot-named files and folders (also in
.dockerignore).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from envtiers.settings import Project

_SKIPPED_PARTS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def project_files(project: Project, names: Iterable[str]) -> tuple[Path, ...]:
    """Every file under each of `names` (folders or files relative to the root), sorted, filtered."""
    files: list[Path] = []
    for name in names:
        top = project.root / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in candidates:
            parts = path.relative_to(project.root).parts
            if not path.is_file() or path.suffix in _SKIPPED_SUFFIXES:
                continue
            if _SKIPPED_PARTS & set(parts) or any(part.startswith(".") for part in parts):
                continue
            files.append(path)
    return tuple(files)


def flow_code(project: Project) -> tuple[str, ...]:
    """The project's packages the flow's steps import ([flow] include)."""
    return project.flow.include


def image_code(project: Project) -> tuple[str, ...]:
    """The project's packages the image copies: [image] code, by default the flow's."""
    return project.image.code if project.image.code is not None else project.flow.include
