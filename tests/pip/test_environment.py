"""Environments built from pip locks: exact versions, reuse, and never trusting a broken build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from envtiers import envcache
from envtiers.errors import EnvironmentBuildError, InputError
from envtiers.pip.environment import create, env_key, env_path, read_locks
from envtiers.pip.locker import lock, runtime_lock_path
from envtiers.pip.uv import Uv, find_uv
from envtiers.platforms import host_platform_name
from envtiers.settings import Project
from tests.support import REPO_ROOT, PackageIndex, build_wheel

ProjectFactory = Callable[..., Project]
NO_UV = Uv("/nonexistent/uv")
HOST = host_platform_name()
EXPECTED = {
    "linux-64": {"purepkg==2.0", "platpkg==1.0", "markerpkg==1.0", "linuxdep==1.0"},
    "osx-arm64": {"purepkg==2.0", "platpkg==1.0", "markerpkg==1.0", "macdep==1.0"},
}

pytestmark = pytest.mark.skipif(HOST not in EXPECTED, reason=f"the test index has no platpkg wheel for {HOST}")


def installed(python: Path) -> set[str]:
    """What `uv pip freeze` reports in the environment of `python`."""
    result = subprocess.run(
        [find_uv(), "pip", "freeze", "--python", str(python)], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def run_python(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def key_of(project: Project) -> str:
    return env_key(project, read_locks(project))


def test_create_installs_exactly_the_locked_versions(locked_project: Project) -> None:
    info = create(locked_project)

    assert info.created
    assert info.prefix.parent == locked_project.cache_dir / "envs"
    assert info.python.is_relative_to(locked_project.cache_dir)
    assert installed(info.python) == EXPECTED[HOST]
    assert run_python(info.python, "import purepkg, platpkg, markerpkg; print(purepkg.__version__)") == "2.0"
    assert envcache.is_complete(info.prefix, info.key)
    marker = envcache.read_marker(info.prefix)
    assert marker is not None
    assert marker["locks"] == [f"lockfiles/pip/{HOST}.txt"]


def test_second_create_reuses_the_environment_without_uv(locked_project: Project) -> None:
    first = create(locked_project)
    marker = first.prefix / envcache.MARKER
    before = marker.stat().st_mtime_ns

    second = create(locked_project, uv=NO_UV)  # would raise ToolError if it ran uv

    assert not second.created
    assert (second.prefix, second.key) == (first.prefix, first.key)
    assert marker.stat().st_mtime_ns == before


def test_a_new_lock_gets_its_own_environment(locked_project: Project) -> None:
    first = create(locked_project)
    locked_project.pip.spec.write_text("purepkg<2\n")
    lock(locked_project)

    second = create(locked_project)

    assert second.created
    assert second.prefix != first.prefix
    assert installed(second.python) == {"purepkg==1.0"}
    assert envcache.is_complete(first.prefix, first.key)  # the old one is left alone


def test_tampered_wheel_fails_the_build_and_nothing_is_marked_complete(
    make_project: ProjectFactory,
    private_index: PackageIndex,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(index_url=private_index.url)
    lock(project)
    # Same file name, different (valid) wheel: the index now serves, and advertises, other bytes.
    impostor = build_wheel(tmp_path, "purepkg", "2.0", extra_source="TAMPERED = True\n")
    private_index.file("purepkg", "2.0").write_bytes(impostor.read_bytes())
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "fresh-uv-cache"))  # nothing cached at lock time

    with pytest.raises(EnvironmentBuildError) as info:
        create(project)

    headline = info.value.headline
    assert headline.startswith(f"a downloaded file does not match the hash recorded in lockfiles/pip/{HOST}.txt: ")
    assert "purepkg==2.0" in headline  # uv's own words name the package
    assert not envcache.is_complete(env_path(project), key_of(project))
    assert envcache.read_marker(env_path(project)) is None


def test_unmarked_leftover_folder_is_rebuilt(locked_project: Project) -> None:
    prefix = env_path(locked_project)
    (prefix / "bin").mkdir(parents=True)
    (prefix / "half-written").write_text("an interrupted build")

    info = create(locked_project)

    assert info.created
    assert not (prefix / "half-written").exists()
    assert installed(info.python) == EXPECTED[HOST]


@pytest.mark.parametrize(
    "marker",
    [
        {"format-version": 1, "tier": "pip", "key": "sha256:another-lock"},
        {"format-version": 99, "tier": "pip", "key": "{key}"},
        "not json",
    ],
    ids=["other-key", "unknown-format", "garbage"],
)
def test_environment_with_an_untrusted_marker_is_rebuilt(locked_project: Project, marker: object) -> None:
    info = create(locked_project)
    (info.prefix / "stale-file").write_text("from the first build")
    text = marker if isinstance(marker, str) else json.dumps(marker).replace("{key}", info.key)
    (info.prefix / envcache.MARKER).write_text(text)

    again = create(locked_project)

    assert again.created
    assert not (info.prefix / "stale-file").exists()
    assert envcache.is_complete(info.prefix, info.key)
    assert installed(again.python) == EXPECTED[HOST]


def test_create_killed_while_installing_is_rebuilt_by_the_next_create(
    locked_project: Project, private_index: PackageIndex
) -> None:
    prefix = env_path(locked_project)
    private_index.stall_downloads = True  # uv blocks on the first wheel download
    command = [sys.executable, "-m", "envtiers", "--project", str(locked_project.root)]
    process = subprocess.Popen(
        [*command, "--index-url", private_index.url, "env", "create"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert private_index.download_started.wait(timeout=60), "uv never started downloading"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # envtiers and its uv child, like a kill -9 or power loss
        process.wait(timeout=30)

    assert envcache.python_in(prefix).exists()  # the venv was made, its packages were not
    assert not envcache.is_complete(prefix, key_of(locked_project))

    info = create(locked_project)

    assert info.created
    assert info.prefix == prefix
    assert installed(info.python) == EXPECTED[HOST]


def test_target_and_link_project(locked_project: Project, tmp_path: Path) -> None:
    (locked_project.root / "projectmod.py").write_text("VALUE = 42\n")
    target = tmp_path / "venv"

    info = create(locked_project, target=target, link_project=True)

    assert info.prefix == target
    code = "import projectmod, purepkg; print(projectmod.VALUE, purepkg.__version__)"
    assert run_python(info.python, code) == "42 2.0"
    assert env_path(locked_project, target=target) == target


def test_dev_environment_adds_the_dev_lock(make_project: ProjectFactory) -> None:
    project = make_project("purepkg<2\n", dev="purepkg\nlinuxdep\n")
    lock(project)

    info = create(project, dev=True)

    assert installed(info.python) == {"purepkg==1.0", "linuxdep==1.0"}
    assert info.prefix != env_path(project)  # runtime-only and runtime+dev are different environments


def test_environment_for_another_platform_is_refused(locked_project: Project) -> None:
    other = "osx-arm64" if HOST == "linux-64" else "linux-64"

    with pytest.raises(InputError, match=f"cannot build a {other} environment on this {HOST} host"):
        create(locked_project, platform=other)


def test_lock_edited_after_locking_is_refused(locked_project: Project) -> None:
    path = runtime_lock_path(locked_project, HOST)
    path.write_text(path.read_text().replace("purepkg==2.0", "purepkg==1.0"))

    with pytest.raises(InputError, match=r"was edited after locking \(digest mismatch\)"):
        create(locked_project)
    assert not (locked_project.cache_dir / "envs").exists()


# -- safe environments: wheels only, foreign folders untouched, unfinished envs never reported


def test_a_wheel_whose_hash_changed_is_refused_not_built_from_the_sdist(
    make_project: ProjectFactory, tmp_path: Path
) -> None:
    """The lock lists the wheel's and the sdist's hashes; the index now serves other wheel bytes.
    uv would build the (hash-matching) sdist instead: envtiers installs locked wheels only."""
    import zipfile

    from tests.support import build_sdist, wheel_from_installed

    files = tmp_path / "both-index"
    files.mkdir()
    wheel = build_wheel(files, "bothpkg", "1.0")
    build_sdist(files, "bothpkg", "1.0")
    wheel_from_installed(files, "setuptools")  # so that building the sdist would succeed
    index = PackageIndex(files).start()
    try:
        project = make_project("bothpkg\n", name="both", index_url=index.url)
        lock(project)
        with zipfile.ZipFile(wheel, "a") as archive:
            archive.writestr("bothpkg/tampered.py", "X = 1\n")

        with pytest.raises(EnvironmentBuildError) as error:
            create(project)
    finally:
        index.stop()
    assert "does not match the hash" in error.value.headline or "wheels only" in error.value.headline
    assert "make lock" in (error.value.fix or "")
    assert not any(envcache.is_complete(p, key_of(project)) for p in (project.cache_dir / "envs").glob("*"))


def test_target_refuses_a_folder_that_is_not_an_envtiers_env(locked_project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious\n")

    with pytest.raises(InputError, match="is not an envtiers environment") as error:
        create(locked_project, target=folder)
    assert "remove" in (error.value.fix or "")
    assert (folder / "notes.txt").read_text() == "precious\n"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_target_rebuilds_its_own_env_and_an_interrupted_build_of_its_own(
    locked_project: Project, tmp_path: Path
) -> None:
    target = tmp_path / "env"
    first = create(locked_project, target=target)
    assert first.created
    envcache.remove(target)  # as a kill -9 mid-build leaves it: files, no marker ...
    target.mkdir()
    (target / "half-written").write_text("")
    building = envcache._building_record(locked_project.cache_dir / "locks", target.absolute())
    building.write_text(f"{target}\n")  # ... and the record that the build was ours
    again = create(locked_project, target=target)
    assert again.created and envcache.is_complete(target, again.key)
    assert not building.exists()


def test_env_path_fails_for_an_unfinished_env(locked_project: Project) -> None:
    from tests.support import run_cli

    info = create(locked_project)
    (info.prefix / envcache.MARKER).unlink()  # a build that never finished

    done = run_cli(locked_project.root, "env", "path", env={"ENVTIERS_CACHE_DIR": str(locked_project.cache_dir)})
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"envtiers: error: the environment {info.prefix} was never finished" in done.stderr
    assert "fix: run `envtiers env create --tier pip`" in done.stderr
    assert "Traceback" not in done.stderr
