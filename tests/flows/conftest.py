"""Fixtures for flows: a local index that also serves Metaflow (repacked from the installed one),
and tiny projects that lock it, so a flow's steps can run in an env built from a tiny lock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.flows.support import FLOW_SPEC, write_flow_project
from tests.support import PackageIndex, wheel_from_installed

# Metaflow and what it imports for a local run; boto3 (S3 only) is overridden away below.
METAFLOW_DISTS = ("metaflow", "requests", "urllib3", "idna", "certifi", "charset-normalizer")


@pytest.fixture(scope="session")
def flow_index(index_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    directory = tmp_path_factory.mktemp("flow-index")
    for path in index_files.iterdir():
        shutil.copy2(path, directory / path.name)
    for name in METAFLOW_DISTS:
        wheel_from_installed(directory, name)
    index = PackageIndex(directory).start()
    yield index
    index.stop()


@pytest.fixture
def flow_project(tmp_path: Path, flow_index: PackageIndex) -> Project:
    """A project locking purepkg and Metaflow for linux-64 against `flow_index`."""
    root = write_flow_project(tmp_path / "project", index_url=flow_index.url)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    return project


@pytest.fixture
def make_flow_project(tmp_path: Path, flow_index: PackageIndex) -> Callable[..., Project]:
    def make(requirements: str = FLOW_SPEC, *, name: str = "project") -> Project:
        root = write_flow_project(tmp_path / name, index_url=flow_index.url, requirements=requirements)
        return load_project(root, cache_dir=tmp_path / "cache")

    return make
