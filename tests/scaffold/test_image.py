"""The image tier of a project set up by `envtiers init`: its docker/Dockerfile and .dockerignore
build, push and pin an image whose Python has the project's lock and code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envtiers.image.builder import build
from envtiers.pip.locker import lock
from envtiers.scaffold.init import init
from envtiers.settings import load_project
from tests.image.support import Infra, docker, remove_images
from tests.support import PackageIndex

pytestmark = pytest.mark.docker


@pytest.fixture
def namespace(registry_login: Infra) -> Iterator[str]:
    name = registry_login.namespace()
    yield name
    remove_images([name])


def test_the_initialised_project_builds_its_image(
    tmp_path: Path, package_index: PackageIndex, namespace: str, registry_login: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "team"
    (root / "teamlib").mkdir(parents=True)
    (root / "teamlib" / "__init__.py").write_text("ANSWER = 42\n")
    (root / "requirements.txt").write_text("purepkg\n")
    init(root, platforms=["linux-64"], index_url=package_index.url, registry=namespace)
    # A spec without metaflow would not run steps; the image only needs to carry the lock here.
    (root / "envs" / "requirements.in").write_text("purepkg\n")
    (root / "envs" / "tools.in").unlink()  # remote tasks' uv: not on this tiny index, not in the image
    monkeypatch.setenv("BASE_IMAGE", registry_login.base_image)  # the test base (nothing can be pulled)
    project = load_project(root, cache_dir=tmp_path / "cache")
    lock(project)

    result = build(project)

    assert result.record is not None and result.built
    done = docker(
        "run", "--rm", result.record.reference, "python", "-c",
        "import purepkg, teamlib, sys; print(purepkg.__version__, teamlib.ANSWER, sys.prefix)",
    )  # fmt: skip
    assert done.stdout.split() == ["2.0", "42", "/opt/envtiers/env"]
