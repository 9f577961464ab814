"""Fixtures for the conda tier: projects whose conda lock solves against the session's local conda
channel (tests/conftest.py) as a mirror of conda-forge, and whose pip entries come from the
session's package index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envtiers.conda.locker import lock as lock_conda
from envtiers.pip.locker import lock as lock_pip
from envtiers.settings import Project, load_project
from tests.conda.support import ENVIRONMENT, add_conda_tier
from tests.support import PackageIndex, write_project

CondaProjectFactory = Callable[..., Project]


@pytest.fixture
def make_conda_project(tmp_path: Path, package_index: PackageIndex, conda_channel: Path) -> CondaProjectFactory:
    """`make_conda_project(environment=..., requirements=..., mirror=..., index_url=..., lock=True)`.

    The project's pip tier locks `requirements` against the session index; its conda tier mirrors
    conda-forge to the session channel (file:// by default). With `lock`, both tiers are locked.
    """

    def make(
        *,
        environment: str = ENVIRONMENT,
        requirements: str = "purepkg\nplatpkg\n",
        mirror: Any = None,
        index_url: str | None = None,
        name: str = "project",
        platforms: tuple[str, ...] = ("linux-64", "osx-arm64"),
        lock: bool = True,
    ) -> Project:
        root = write_project(
            tmp_path / name, requirements=requirements, index_url=index_url or package_index.url, platforms=platforms
        )
        add_conda_tier(
            root, mirror=conda_channel.as_uri() if mirror is None else mirror or None, environment=environment
        )
        project = load_project(root, cache_dir=tmp_path / "cache")
        if lock:
            lock_pip(project)
            lock_conda(project)
        return project

    return make
