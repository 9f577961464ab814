"""The project's real spec locked against PyPI: the CUDA wheels on Linux only, TensorFlow everywhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from envtiers.check import check_project
from envtiers.errors import IndexUnreachableError
from envtiers.pip import lockfile
from envtiers.pip.locker import LockResult, lock, runtime_lock_path
from envtiers.settings import Project, load_project
from tests.support import REPO_ROOT

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture
def pypi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV_NO_CONFIG")  # lock as a user would, with their uv settings (proxies, certs)


def lock_or_skip(project: Project) -> list[LockResult]:
    """Lock against the public index; outside CI an unreachable index skips, in CI it fails."""
    try:
        return lock(project)
    except IndexUnreachableError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the public package index is not reachable: {error.headline}")


def test_real_spec_locks_cuda_wheels_for_linux_only(pypi: None, tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "envs", tmp_path / "envs")
    project = load_project(tmp_path, cache_dir=tmp_path / "cache")
    assert project.pip.index_url is None  # PyPI

    results = lock_or_skip(project)

    assert all(result.changed for result in results)
    linux = {pin.name for pin in lockfile.read(runtime_lock_path(project, "linux-64")).pins}
    osx = {pin.name for pin in lockfile.read(runtime_lock_path(project, "osx-arm64")).pins}
    assert {"tensorflow", "keras", "keras-cv", "nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= linux
    assert {"tensorflow", "keras", "keras-cv"} <= osx
    assert not [name for name in osx if name.startswith("nvidia-")]
    assert "promise" not in linux | osx  # dropped by envs/overrides.txt
    report = check_project(project, tiers=("pip",))  # the conda tier reads its mirror from the repo
    assert report.problems == (), "\n".join(problem.render() for problem in report.problems)
    assert len(report.checked) == 5  # runtime and dev for both platforms, and tools
