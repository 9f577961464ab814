"""`envtiers check` on the conda tier: offline, no solver; each kind of drift named with its fix."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from envtiers.check import check_project
from envtiers.conda.checker import check_conda
from envtiers.settings import Project, load_project
from tests.conda.conftest import CondaProjectFactory
from tests.support import run_cli

LOCK = "lockfiles/conda-lock.yml"


def messages(project: Project) -> list[str]:
    _, problems = check_conda(project)
    assert all(p.path == LOCK and "make lock" in p.fix for p in problems)
    return [p.message for p in problems]


def edit_lock(project: Project, change: Callable[[dict[str, Any]], None]) -> None:
    """Hand-edit the lock as YAML (what a merge conflict resolution or a careless edit does)."""
    path = project.root / LOCK
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def entry(data: dict[str, Any], manager: str, name: str, platform: str) -> dict[str, Any]:
    return next(p for p in data["package"] if (p["manager"], p["name"], p["platform"]) == (manager, name, platform))


def test_a_fresh_lock_is_consistent(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    report = check_project(project)
    assert report.problems == ()
    assert LOCK in report.checked


def test_a_changed_spec_makes_the_lock_stale(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    environment = project.envs_dir / "environment.yml"
    environment.write_text(environment.read_text().replace("python 3.11.*", "python >=3.11,<3.12"))

    found = messages(project)
    assert any("was locked from a different envs/environment.yml" in m for m in found)
    assert any("conda-lock's content hash for linux-64 is stale" in m for m in found)


def test_a_new_spec_nothing_locked_satisfies_is_named(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    environment = project.envs_dir / "environment.yml"
    environment.write_text(environment.read_text() + "  - zlib\n")
    assert "linux-64: environment.yml asks for 'zlib', the lock has no locked record" in messages(project)


def test_a_dropped_dependency_fails_the_closure_check(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda d: d["package"].remove(entry(d, "conda", "python", "linux-64")))

    found = messages(project)
    assert any(
        m.startswith("linux-64: pip 23.2.1 depends on 'python >=3.11'")
        and "no locked record or declared virtual package provides" in m
        for m in found
    ), found
    assert "linux-64: environment.yml asks for 'python 3.11.*', the lock has no locked record" in found
    assert not any(m.startswith("osx-arm64") for m in found)


def test_an_undeclared_virtual_package_fails_the_closure_check(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    settings = project.envs_dir / "tiers.toml"
    settings.write_text(settings.read_text().replace('__glibc = "2.28", ', ""))
    reloaded = load_project(project.root, cache_dir=project.cache_dir)

    found = messages(reloaded)
    assert any("python 3.11" in m and "'__glibc >=2.17'" in m for m in found), found


def test_a_pip_entry_that_disagrees_with_the_pip_lock_fails(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda d: entry(d, "pip", "purepkg", "osx-arm64").update(version="1.0"))

    found = messages(project)
    assert "osx-arm64: pip entry purepkg==1.0 disagrees with lockfiles/pip/osx-arm64.txt (purepkg==2.0)" in found


def test_a_pip_lock_relocked_alone_makes_the_conda_lock_stale(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    (project.envs_dir / "requirements.in").write_text("purepkg\n")
    from envtiers.pip.locker import lock

    lock(project)
    found = messages(project)
    assert any("input hash mismatch" in m for m in found)
    assert any("pip entry platpkg==1.0 is not in lockfiles/pip/linux-64.txt" in m for m in found)


def test_an_unreadable_lock_is_one_problem(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    (project.root / LOCK).write_text("version: 1\nmetadata: {}\n")
    (problem,) = check_conda(project)[1]
    assert "cannot be read as a conda-lock file: missing key 'content_hash'" in problem.message


def test_make_check_names_the_conda_lock(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    clean = run_cli(project.root, "check")
    environment = project.envs_dir / "environment.yml"
    environment.write_text(environment.read_text() + "  - condapkg >=1\n")
    stale = run_cli(project.root, "check")

    assert clean.returncode == 0, clean.stdout
    assert stale.returncode == 1
    assert f"{LOCK}: was locked from a different envs/environment.yml" in stale.stdout
    assert "fix: run `make lock`" in stale.stdout
    assert "Traceback" not in stale.stdout + stale.stderr


def test_the_repository_lock_passes_when_the_spec_is_untouched() -> None:
    from tests.support import REPO_ROOT

    assert check_conda(load_project(REPO_ROOT))[1] == []


def test_the_repository_check_names_the_conda_lock_when_environment_yml_changes(tmp_path: Path) -> None:
    from tests.support import REPO_ROOT

    for part in ("envs", "lockfiles"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part)
    environment = tmp_path / "envs" / "environment.yml"
    environment.write_text(environment.read_text() + "  - openssl\n")

    done = run_cli(tmp_path, "check")
    assert done.returncode == 1
    assert f"{LOCK}: was locked from a different envs/environment.yml" in done.stdout
    assert f"{LOCK}: conda-lock's content hash for linux-64 is stale" in done.stdout
    assert "lockfiles/pip/" not in done.stdout  # only the conda lock is stale


# -- integrity: the records themselves (a digest of them in custom_metadata, and the mirror's repodata)


def test_a_hand_edited_sha256_is_found(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda data: entry(data, "conda", "condapkg", "linux-64")["hash"].update(sha256="0" * 64))

    found = messages(project)
    assert any("do not match their recorded digest" in m for m in found)
    assert any("condapkg" in m and "sha256" in m and "0" * 64 in m for m in found)  # against the repodata


def test_a_hand_edited_md5_is_found(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda data: entry(data, "conda", "python", "linux-64")["hash"].update(md5="f" * 32))

    assert any("do not match their recorded digest" in m for m in messages(project))


def test_a_hand_edited_version_is_found(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda data: entry(data, "conda", "condapkg", "linux-64").update(version="9.9"))

    found = messages(project)
    assert any("do not match their recorded digest" in m for m in found)
    assert any("condapkg is locked as version 9.9, its file is condapkg-1.0-" in m for m in found)


def test_a_hand_edited_url_is_found_and_an_unparsable_one_is_no_traceback(
    make_conda_project: CondaProjectFactory,
) -> None:
    project = make_conda_project()

    def rename(data: dict[str, Any]) -> None:
        package = entry(data, "conda", "condapkg", "linux-64")
        package["url"] = package["url"].rsplit("/", 1)[0] + "/not-a-package-file"

    edit_lock(project, rename)
    found = messages(project)
    assert any("do not match their recorded digest" in m for m in found)
    assert any("condapkg's URL names no conda package file" in m for m in found)

    done = run_cli(project.root, "check")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_a_consistent_edit_is_caught_by_the_mirrors_repodata(make_conda_project: CondaProjectFactory) -> None:
    """Even a lock whose digest was recomputed after the edit disagrees with the channel's repodata."""
    from envtiers.conda import lockfile

    project = make_conda_project()

    def tamper(data: dict[str, Any]) -> None:
        entry(data, "conda", "condapkg", "linux-64")["hash"]["sha256"] = "1" * 64
        packages = lockfile._parse(project.root / LOCK, yaml.safe_load(yaml.safe_dump({**data, "version": "1"})))
        custom = data["metadata"]["custom_metadata"]
        custom[lockfile.RECORDS_KEY] = lockfile.records_digest(packages.package, data["metadata"]["content_hash"])

    edit_lock(project, tamper)
    found = messages(project)
    assert not any("recorded digest" in m for m in found)
    assert any("has sha256 " + "1" * 64 + " in the lock" in m for m in found)


def test_a_lock_of_the_previous_format_is_refused_with_the_fix(make_conda_project: CondaProjectFactory) -> None:
    project = make_conda_project()
    edit_lock(project, lambda data: data["metadata"]["custom_metadata"].update({"envtiers-format-version": "1"}))

    assert any("written by an older envtiers" in m for m in messages(project))
