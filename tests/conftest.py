"""Shared fixtures: one local package index for the session, tiny projects locked against it, and
the session's DetectorFlow runs.

Every test gets its own uv cache and envtiers cache (tampering with a served wheel must not be
hidden by a wheel another test already cached), and no setting leaks in from the developer's shell.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envtiers.pip.locker import lock
from envtiers.settings import REDIRECTING_VARIABLES, Project, load_project
from tests.conda.channel import ChannelServer
from tests.flows.support import FlowRuns, make_detector_flow_runs
from tests.support import PackageIndex, build_packages, build_wheel, write_project

# The spec most index-backed tests lock: a pure package, a platform-tagged one, and markers.
BASE_SPEC = "purepkg\nplatpkg\nmarkerpkg\n"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in REDIRECTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    # The CLI has no --cache-dir: this makes its cache the one `make_project` gives load_project.
    monkeypatch.setenv("ENVTIERS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def index_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("index-files")
    build_packages(directory)
    return directory


@pytest.fixture(scope="session")
def package_index(index_files: Path) -> Iterator[PackageIndex]:
    """The session's index; read-only: tests that alter served files use `private_index`."""
    index = PackageIndex(index_files).start()
    yield index
    index.stop()


@pytest.fixture
def private_index(index_files: Path, tmp_path: Path) -> Iterator[PackageIndex]:
    """A copy of the session's packages on its own server, for tests that change what it serves."""
    directory = tmp_path / "private-index"
    shutil.copytree(index_files, directory)
    index = PackageIndex(directory).start()
    yield index
    index.stop()


@pytest.fixture(scope="session")
def conda_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's local conda channel: python (linux-64, + an osx-arm64 stub), pip and condapkg
    (noarch), built from this machine's CPython and wheels (tests/conda/channel.py). Read-only."""
    from tests.conda.channel import build_channel

    work = tmp_path_factory.mktemp("conda-build")
    wheel = build_wheel(work, "condapkg", "1.0")
    return build_channel(tmp_path_factory.mktemp("conda-channel"), work, extra_wheels=[wheel])


@pytest.fixture(scope="session")
def conda_server(conda_channel: Path) -> Iterator[ChannelServer]:
    """The session's conda channel over http on 127.0.0.1."""
    server = ChannelServer(conda_channel).start()
    yield server
    server.stop()


_SESSION_INDEX: Any = object()


@pytest.fixture
def make_project(tmp_path: Path, package_index: PackageIndex) -> Callable[..., Project]:
    """`make_project(requirements, *, name=..., index_url=..., overrides=..., dev=..., tools=...)`.

    Writes a project under tmp_path locking against the session index (unless `index_url` says
    otherwise) and returns it loaded, with its envtiers cache in tmp_path/cache.
    """

    def make(
        requirements: str = BASE_SPEC, *, name: str = "project", index_url: Any = _SESSION_INDEX, **options: Any
    ) -> Project:
        url = package_index.url if index_url is _SESSION_INDEX else index_url
        root = write_project(tmp_path / name, requirements=requirements, index_url=url, **options)
        return load_project(root, cache_dir=tmp_path / "cache")

    return make


@pytest.fixture
def locked_project(make_project: Callable[..., Project]) -> Project:
    """A project with BASE_SPEC locked for linux-64 and osx-arm64."""
    project = make_project()
    lock(project)
    return project


@pytest.fixture(scope="session")
def detector_flow_runs(tmp_path_factory: pytest.TempPathFactory) -> FlowRuns:
    """Three pip-tier DetectorFlow runs, one training (tests/flows/support.py's FlowRuns), made once
    per session: tests/flows/test_detector_flow.py checks them, and tests/detector/app/test_page.py
    shows A and C in the front end, so CI trains the detector flow once for both. Tests must not
    change them; one that needs them in another folder copies their datastore (`base/.metaflow`)."""
    return make_detector_flow_runs(tmp_path_factory.mktemp("detector-flow"))
