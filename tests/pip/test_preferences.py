"""envs/preferences.txt: the first lock of a file prefers the imported versions; nothing else does."""

from __future__ import annotations

from collections.abc import Callable

from envtiers.pip import lockfile
from envtiers.pip.checker import check_pip
from envtiers.pip.locker import lock, runtime_lock_path
from envtiers.settings import Project


def _pinned(project: Project, name: str) -> str:
    pins = lockfile.read(runtime_lock_path(project, "linux-64")).pins
    return next(pin.version for pin in pins if pin.name == name)


def test_a_first_lock_keeps_the_imported_version(make_project: Callable[..., Project]) -> None:
    project = make_project("purepkg\n", platforms=("linux-64",))
    (project.envs_dir / "preferences.txt").write_text("# imported\npurepkg==1.0\nnotlocked==9.9\n")
    lock(project)
    assert _pinned(project, "purepkg") == "1.0"  # 2.0 is allowed and newer
    # Not an input: removing the file leaves the lock up to date and consistent.
    (project.envs_dir / "preferences.txt").unlink()
    assert [r.changed for r in lock(project)] == [False]
    assert check_pip(project)[1] == []


def test_an_existing_lock_wins_over_preferences(make_project: Callable[..., Project]) -> None:
    project = make_project("purepkg\n", platforms=("linux-64",))
    lock(project)
    assert _pinned(project, "purepkg") == "2.0"
    (project.envs_dir / "preferences.txt").write_text("purepkg==1.0\n")
    lock(project, force=True)
    assert _pinned(project, "purepkg") == "2.0"
    lock(project, upgrade=True)
    assert _pinned(project, "purepkg") == "2.0"
