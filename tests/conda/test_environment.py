"""`envtiers env create --tier conda`: real packages installed by py-rattler, wheels by uv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from envtiers import envcache
from envtiers.conda.environment import create, env_path, read_lock
from envtiers.errors import EnvironmentBuildError, InputError
from tests.conda.channel import ChannelServer
from tests.conda.conftest import CondaProjectFactory
from tests.conda.support import SNAPSHOT
from tests.support import PackageIndex, build_wheel, run_cli, snapshot

SNAPSHOT_ENVIRONMENT = "channels:\n  - conda-forge\ndependencies:\n  - python 3.11.*\n  - pip\n"
PROBE = (
    "import json, sys, ssl, sqlite3, ctypes, condapkg, purepkg, platpkg, pip; "
    "print(json.dumps([sys.prefix, sys.executable, condapkg.__version__, purepkg.__version__]))"
)


def probe(python: Path) -> list[str]:
    done = subprocess.run([str(python), "-s", "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_the_env_runs_its_own_interpreter_and_imports_the_locked_packages(
    make_conda_project: CondaProjectFactory,
) -> None:
    project = make_conda_project()
    info = create(project)

    assert info.created is True
    assert info.prefix.parent == project.cache_dir / "envs"
    prefix, executable, condapkg, purepkg = probe(info.python)
    assert Path(prefix) == info.prefix
    assert Path(executable).parent.parent == info.prefix
    assert (condapkg, purepkg) == ("1.0", "2.0")
    marker = envcache.read_marker(info.prefix)
    assert marker is not None and (marker["tier"], marker["key"]) == ("conda", info.key)
    assert env_path(project) == info.prefix

    before = snapshot(info.prefix)
    again = create(project)
    assert (again.created, again.prefix) == (False, info.prefix)
    assert snapshot(info.prefix) == before


def test_the_cli_creates_and_finds_the_env(make_conda_project: CondaProjectFactory, tmp_path: Path) -> None:
    project = make_conda_project()
    target = tmp_path / "target-env"
    created = run_cli(project.root, "env", "create", "--tier", "conda", "--target", str(target))
    found = run_cli(project.root, "env", "path", "--tier", "conda", "--target", str(target))

    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == str(target / "bin" / "python") == found.stdout.strip()
    assert Path(probe(target / "bin" / "python")[0]) == target


@pytest.mark.parametrize("served", ["file", "http"])
def test_a_tampered_conda_package_is_refused(
    make_conda_project: CondaProjectFactory, conda_channel: Path, tmp_path: Path, served: str
) -> None:
    private = tmp_path / "channel"
    shutil.copytree(conda_channel, private)
    server = ChannelServer(private).start()
    project = make_conda_project(mirror=private.as_uri() if served == "file" else server.url)
    # Same name, other bytes, repodata untouched: what a compromised or corrupted mirror serves.
    package = next((private / "noarch").glob("condapkg-*.conda"))
    package.write_bytes(package.read_bytes() + b"tampered")

    try:
        with pytest.raises(EnvironmentBuildError, match="does not match the hash") as caught:
            create(project)
    finally:
        server.stop()
    assert "condapkg" in caught.value.headline
    assert all(envcache.read_marker(p) is None for p in (project.cache_dir / "envs").iterdir())


def test_a_tampered_wheel_is_refused(make_conda_project: CondaProjectFactory, private_index: PackageIndex) -> None:
    project = make_conda_project(index_url=private_index.url)
    wheel = private_index.file("purepkg", "2.0")
    original = wheel.read_bytes()
    wheel.unlink()
    build_wheel(private_index.directory, "purepkg", "2.0", extra_source="EVIL = True\n")

    with pytest.raises(EnvironmentBuildError, match="does not match the hash"):
        create(project)
    envs = list((project.cache_dir / "envs").iterdir())
    assert envs and all(envcache.read_marker(p) is None for p in envs)

    # The half-built env (conda part installed, wheels refused) is never used: the next call rebuilds it.
    wheel.write_bytes(original)
    info = create(project)
    assert info.created is True and info.prefix == envs[0]
    assert probe(info.python)[3] == "2.0"


def test_another_platforms_env_is_refused(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    with pytest.raises(InputError, match="cannot build a osx-arm64 environment"):
        create(project, platform="osx-arm64")


def test_a_missing_lock_says_how_to_make_it(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project(lock=False)
    done = run_cli(project.root, "env", "create", "--tier", "conda")
    assert done.returncode != 0
    assert "lockfiles/conda-lock.yml is missing" in done.stderr
    assert "fix: run `make lock`" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_metadata_only_mirror_locks_but_cannot_install(make_conda_project: CondaProjectFactory) -> None:
    """The conda-forge snapshot as a mirror: a genuine conda-forge lock, and a clear refusal to install."""
    project = make_conda_project(environment=SNAPSHOT_ENVIRONMENT, mirror=str(SNAPSHOT))
    python = next(p for p in read_lock(project)[1].package if (p.name, p.platform) == ("python", "linux-64"))
    assert python.url == "https://conda.anaconda.org/conda-forge/linux-64/python-3.11.15-hd63d673_0_cpython.conda"

    done = run_cli(project.root, "env", "create", "--tier", "conda")
    assert done.returncode == 1
    assert "a metadata-only mirror can lock, not install" in done.stderr
    assert "fix: point [conda.mirrors] in envs/tiers.toml at a mirror with the package files" in done.stderr
    assert "Traceback" not in done.stderr
