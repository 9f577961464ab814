"""Fixtures for the image tier: the docker engine and registry (skipped outside CI with the
reason, a failure under CI=true), and tiny projects locked for linux-64 with the real Dockerfile."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envtiers.pip.locker import lock
from envtiers.settings import Project, load_project
from tests.image.support import Infra, add_image_files, docker_ready, infra_from_env, remove_images
from tests.support import PackageIndex, write_project

IMAGE_SPEC = "purepkg\nplatpkg\n"
# Settings envtiers' image commands read from the environment: none may leak in from the shell.
IMAGE_VARIABLES = (
    "REGISTRY",
    "BASE_IMAGE",
    "ENVTIERS_REGISTRY",
    "ENVTIERS_BASE_IMAGE",
    "ENVTIERS_REGISTRY_USER",
    "ENVTIERS_REGISTRY_PASSWORD",
    "ENVTIERS_DOCKER_GPUS",
    "SOURCE_DATE_EPOCH",
)


@pytest.fixture(autouse=True)
def hermetic_image_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in IMAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def infra() -> Infra:
    reason = docker_ready()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the docker tests: {reason}")
        pytest.skip(reason)
    return infra_from_env()


@pytest.fixture
def registry_login(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> Infra:
    """The test registry's credentials in the environment, as a CI job would set them."""
    monkeypatch.setenv("ENVTIERS_REGISTRY_USER", infra.user)
    monkeypatch.setenv("ENVTIERS_REGISTRY_PASSWORD", infra.password)
    return infra


@pytest.fixture
def make_image_project(tmp_path: Path, package_index: PackageIndex, infra: Infra) -> Iterator[Callable[..., Project]]:
    namespaces: list[str] = []

    def make(requirements: str = IMAGE_SPEC, *, name: str = "project", index_url: str | None = None) -> Project:
        root = write_project(
            tmp_path / name,
            requirements=requirements,
            index_url=index_url or package_index.url,
            platforms=("linux-64",),
        )
        namespaces.append(infra.namespace())
        add_image_files(root, registry=namespaces[-1], base_image=infra.base_image)
        project = load_project(root, cache_dir=tmp_path / "cache")
        lock(project)
        return project

    yield make
    remove_images(namespaces)


@pytest.fixture
def image_project(make_image_project: Callable[..., Project], registry_login: Infra) -> Project:
    return make_image_project()


# The flows' index (tiny wheels + Metaflow repacked from this machine), for the flow test.
# A tiny detector export (TensorFlow on the host's .venv) and its in-process predictor, for the real
# image's serving and app tests.
from tests.detector.conftest import exported_model, predictor  # noqa: E402, F401
from tests.flows.conftest import flow_index  # noqa: E402, F401
