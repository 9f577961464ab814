"""Fixtures for the conda tier: one local conda channel per session (file:// and http), and
projects whose conda lock solves against it (as a mirror of conda-forge) and whose pip entries come
from the session's package index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envtiers.conda.locker import lock as lock_conda
from envtiers.pip.locker import lock as lock_pip
from envtiers.settings import Project, load_project
from tests.conda.channel import ChannelServer, build_channel
from tests.support import PackageIndex, build_wheel, write_project

CondaProjectFactory = Callable[..., Project]

ENVIRONMENT = "channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n  - pip\n  - condapkg\n"
VIRTUAL = (
    "[conda.virtual_packages]\n"
    'linux-64 = { __glibc = "2.28", __unix = "0", __linux = "0" }\n'
    'osx-arm64 = { __osx = "13.0", __unix = "0" }\n'
)


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's channel folder: python (linux-64, + an osx-arm64 stub), pip, condapkg (noarch)."""
    work = tmp_path_factory.mktemp("conda-build")
    wheel = build_wheel(work, "condapkg", "1.0")
    return build_channel(tmp_path_factory.mktemp("conda-channel"), work, extra_wheels=[wheel])


@pytest.fixture(scope="session")
def conda_server(conda_channel: Path) -> Iterator[ChannelServer]:
    server = ChannelServer(conda_channel).start()
    yield server
    server.stop()


def conda_settings(mirror: str | None) -> str:
    text = '\n[conda]\nenvironment = "environment.yml"\n' + VIRTUAL
    if mirror is not None:
        text += f'\n[conda.mirrors]\nconda-forge = "{mirror}"\n'
    return text


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
        settings = root / "envs" / "tiers.toml"
        settings.write_text(settings.read_text() + conda_settings(mirror if mirror is not None else conda_channel.as_uri()))
        (root / "envs" / "environment.yml").write_text(environment)
        project = load_project(root, cache_dir=tmp_path / "cache")
        if lock:
            lock_pip(project)
            lock_conda(project)
        return project

    return make
