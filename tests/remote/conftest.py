"""Fixtures for remote runs: the local AWS (moto Batch in Docker, from .ci/aws-up), skipped with
the reason outside CI and a failure under CI=true, like the docker fixtures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.flows.support import write_tiny_flow
from tests.image.support import docker_ready
from tests.remote.support import LocalAws, add_remote_dists, start_local_aws, write_remote_project
from tests.support import PackageIndex


@pytest.fixture(scope="session")
def local_aws() -> LocalAws:
    # .ci/aws-up needs docker-up's engine, registry and base (it builds the Batch task base on it).
    reason = docker_ready()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the remote tests: {reason}")
        pytest.skip(reason)
    try:
        return start_local_aws()
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def remote_index(index_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    """The session index plus Metaflow, boto3 and uv (repacked from this interpreter), on
    127.0.0.1: the Batch containers share the host network, so they install from it too."""
    directory = tmp_path_factory.mktemp("remote-index")
    for path in index_files.iterdir():
        shutil.copy2(path, directory / path.name)
    add_remote_dists(directory)
    index = PackageIndex(directory).start()
    yield index
    index.stop()


@pytest.fixture
def remote_project(tmp_path: Path, remote_index: PackageIndex) -> Project:
    """A tiny project for remote runs: purepkg + Metaflow + boto3 locked for linux-64, a tools lock
    (uv, packaging), and TinyFlow in flows/."""
    root = write_remote_project(tmp_path / "project", index_url=remote_index.url)
    write_tiny_flow(root)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)
    return project
