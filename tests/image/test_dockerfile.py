"""docker/Dockerfile itself: hadolint passes, and the pure parts of the spec read it right."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envtiers.errors import InputError
from envtiers.image.spec import check_pinned, dockerfile_base_default, registry_host
from tests.support import REPO_ROOT

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: it is in the dev lock (make venv)")
    return found


def test_hadolint_passes() -> None:
    from envtiers.image.spec import ENV_RECIPE

    for path in (DOCKERFILE, ENV_RECIPE):
        done = subprocess.run([hadolint(), str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, (path, done.stdout + done.stderr)


def test_the_default_base_is_pinned_by_digest() -> None:
    base = dockerfile_base_default(DOCKERFILE.read_text())
    assert base is not None and base.startswith("python:3.11-")
    assert check_pinned(base, where="test") == base


@pytest.mark.parametrize("base", ["python:3.11-slim", "python@sha256:abc", "python:latest@sha256:" + "0" * 63])
def test_an_unpinned_base_is_refused(base: str) -> None:
    with pytest.raises(InputError, match="not pinned by digest"):
        check_pinned(base, where="test")


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("ghcr.io/envtiers/detector", "ghcr.io"),
        ("127.0.0.1:5000/t/x", "127.0.0.1:5000"),
        ("team/detector", "docker.io"),
    ],
)
def test_registry_host(name: str, host: str) -> None:
    assert registry_host(name) == host
