"""The toolkit as a user installs it: the wheel built from this checkout, installed with Metaflow
into a fresh virtual environment, from a local index (no network)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envtiers.pip.uv import find_uv
from tests.flows.conftest import METAFLOW_DISTS
from tests.support import REPO_ROOT, PackageIndex, wheel_from_installed

# What the wheel and Metaflow install, besides METAFLOW_DISTS: envtiers' own dependencies (uv,
# with its binary) and boto3's closure (Metaflow requires boto3).
TOOL_DISTS = ("uv", "packaging", "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six")
# The parts of the checkout a wheel is built from (a copy: the build leaves build/ and egg-info).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "envtiers", "metaflow_extensions")


@pytest.fixture(scope="session")
def toolkit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("wheel-source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in WHEEL_SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("envtiers-*.whl")
    return wheel


@pytest.fixture(scope="session")
def tool_index(index_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    """The tiny wheels, Metaflow and what it imports, uv, packaging and boto3 (repacked from the
    interpreter running the tests)."""
    directory = tmp_path_factory.mktemp("tool-index")
    for path in index_files.iterdir():
        shutil.copy2(path, directory / path.name)
    for name in (*METAFLOW_DISTS, *TOOL_DISTS):
        wheel_from_installed(directory, name)
    index = PackageIndex(directory).start()
    yield index
    index.stop()


@pytest.fixture(scope="session")
def tool_venv(toolkit_wheel: Path, tool_index: PackageIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the envtiers wheel and Metaflow: `pip install envtiers metaflow`."""
    venv = tmp_path_factory.mktemp("tool-venv") / "venv"
    cache = tmp_path_factory.mktemp("tool-venv-uv-cache")
    env = {"UV_CACHE_DIR": str(cache), "UV_NO_CONFIG": "1", "PATH": "/usr/bin:/bin"}
    uv = find_uv()
    for args in (
        ["venv", "--quiet", "--python", sys.executable, str(venv)],
        ["pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--index-url", tool_index.url,
         str(toolkit_wheel), "metaflow"],
    ):  # fmt: skip
        done = subprocess.run([uv, *args], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return venv


# The image tier's docker engine and registry (skipped outside CI, a failure under CI=true).
from tests.image.conftest import hermetic_image_env, infra, registry_login  # noqa: E402, F401
