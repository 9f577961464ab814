"""envtiers audit against a tiny OSV folder the test writes, and against a local OSV API stub."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from envtiers.errors import SettingsError
from envtiers.pip.locker import lock
from envtiers.review.audit import audit
from envtiers.review.osv import parse
from envtiers.settings import Project, load_project
from tests.conda.conftest import CondaProjectFactory
from tests.review.support import RANGE_ADVISORY, OsvStub, write_osv_folder
from tests.support import run_cli

SPEC = "purepkg==1.0\nplatpkg\nmarkerpkg\n"


@pytest.fixture
def vulnerable(make_project: Callable[..., Project]) -> Project:
    project = make_project(SPEC)
    lock(project)
    return project


def _with_ignore(project: Project, entry: str) -> Project:
    settings = project.root / "envs" / "tiers.toml"
    settings.write_text(settings.read_text() + "\n[[audit.ignore]]\n" + entry + "\n")
    return load_project(project.root, cache_dir=project.cache_dir)


def test_folder_audit_finds_range_and_versions_not_withdrawn(vulnerable: Project, tmp_path: Path) -> None:
    db = write_osv_folder(tmp_path / "osv")
    report = audit(vulnerable, db=db)
    found = {(f.advisory.id, f.package.name, f.package.version, f.fixed) for f in report.findings}
    assert found == {("TEST-2024-1", "purepkg", "1.0", "2.0"), ("TEST-2024-2", "platpkg", "1.0", None)}
    purepkg = next(f for f in report.findings if f.package.name == "purepkg")
    assert purepkg.where == ("pip linux-64", "pip osx-arm64")  # the image tier needs a Dockerfile: absent here
    assert report.exit_code == 1

    result = run_cli(vulnerable.root, "audit", "--db", str(db))
    assert result.returncode == 1, result.stderr
    assert "TEST-2024-1 (CVE-2024-0001, GHSA-aaaa-bbbb-cccc): purepkg 1.0: fixed in 2.0" in result.stdout
    assert "TEST-2024-2: platpkg 1.0: no fixed version known" in result.stdout
    assert "TEST-2024-3" not in result.stdout


def test_fixed_version_is_clean(make_project: Callable[..., Project], tmp_path: Path) -> None:
    project = make_project("purepkg==2.0\n")
    lock(project)
    db = write_osv_folder(tmp_path / "osv")
    result = run_cli(project.root, "audit", "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["findings"] == []


def test_ignore_entry_until_it_expires(vulnerable: Project, tmp_path: Path) -> None:
    db = write_osv_folder(tmp_path / "osv")
    future = _with_ignore(vulnerable, 'id = "CVE-2024-0001"\nreason = "we never parse input"\nexpires = 2999-12-31')
    future = _with_ignore(future, 'id = "TEST-2024-2"\nreason = "default overridden"\nexpires = 2999-12-31')
    report = audit(future, db=db)
    assert report.vulnerable == () and len(report.findings) == 2 and report.exit_code == 0
    assert run_cli(future.root, "audit", "--db", str(db)).returncode == 0

    # The same entries on a day after their expiry: they no longer hide anything, and they fail themselves.
    later = audit(future, db=db, today=dt.date(3000, 1, 1))
    assert later.exit_code == 1 and len(later.vulnerable) == 2 and len(later.expired) == 2
    assert "expired on 2999-12-31" in later.render()


def test_expired_entry_fails_even_without_a_finding(make_project: Callable[..., Project], tmp_path: Path) -> None:
    project = make_project("purepkg==2.0\n")
    lock(project)
    project = _with_ignore(project, 'id = "TEST-2024-1"\nreason = "old decision"\nexpires = 2001-01-01')
    result = run_cli(project.root, "audit", "--db", str(write_osv_folder(tmp_path / "osv")))
    assert result.returncode == 1
    assert "the ignore entry for TEST-2024-1 expired on 2001-01-01" in result.stdout


def test_ignore_entry_needs_reason_and_date(vulnerable: Project, tmp_path: Path) -> None:
    project = _with_ignore(vulnerable, 'id = "TEST-2024-1"\nexpires = 2999-01-01')
    with pytest.raises(SettingsError, match="has no reason"):
        audit(project, db=tmp_path)
    project.root.joinpath("envs", "tiers.toml").write_text(
        project.root.joinpath("envs", "tiers.toml")
        .read_text()
        .replace("expires = 2999-01-01", 'reason = "x"\nexpires = "soon"')
    )
    result = run_cli(project.root, "audit", "--db", str(write_osv_folder(tmp_path / "osv")))
    assert result.returncode == 2
    assert "needs an expiry date" in result.stderr and "Traceback" not in result.stderr


def test_missing_database_is_bad_input(vulnerable: Project, tmp_path: Path) -> None:
    result = run_cli(vulnerable.root, "audit", "--db", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "is not a folder" in result.stderr and "fix:" in result.stderr
    assert run_cli(vulnerable.root, "audit").returncode == 2  # no --db, no [audit] db


def test_service_osv_against_a_local_api(vulnerable: Project) -> None:
    stub = OsvStub({("PyPI", "purepkg", "1.0"): ["TEST-2024-1"]})
    try:
        result = run_cli(vulnerable.root, "audit", "--service", "osv", env={"ENVTIERS_OSV_URL": stub.url})
    finally:
        stub.stop()
    assert result.returncode == 1, result.stderr
    assert "TEST-2024-1 (CVE-2024-0001, GHSA-aaaa-bbbb-cccc): purepkg 1.0: fixed in 2.0" in result.stdout
    asked = {(q["package"]["name"], q["version"]) for q in stub.queries}
    assert {("purepkg", "1.0"), ("platpkg", "1.0"), ("markerpkg", "1.0")} <= asked


def test_service_unreachable_is_an_error(vulnerable: Project) -> None:
    from tests.support import closed_port_url

    url = closed_port_url().removesuffix("/simple")
    result = run_cli(vulnerable.root, "audit", "--service", "osv", env={"ENVTIERS_OSV_URL": url})
    assert result.returncode == 2
    assert "could not be reached" in result.stderr and "--db PATH" in result.stderr


@pytest.mark.parametrize(("version", "affected"), [("0.1", True), ("1.9.9", True), ("2.0", False), ("2.1", False)])
def test_range_bounds(version: str, affected: bool) -> None:
    advisory = parse(RANGE_ADVISORY, source="test")
    assert advisory.matches(ecosystem="PyPI", name="purepkg", version=version)[0] is affected


def test_last_affected_and_reintroduced() -> None:
    advisory = parse(
        {
            "id": "X",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "p"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "1.2"}]},
                        {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"fixed": "3.1"}]},
                    ],
                }
            ],
        },
        source="test",
    )
    results = {v: advisory.matches(ecosystem="PyPI", name="p", version=v) for v in ("0.9", "1.2", "1.3", "3.0.5")}
    assert results == {"0.9": (False, None), "1.2": (True, None), "1.3": (False, None), "3.0.5": (True, "3.1")}


def test_conda_records_matched_by_pypi_name_only_when_python_packages(
    make_conda_project: CondaProjectFactory, tmp_path: Path
) -> None:
    import yaml

    project = make_conda_project()
    db = tmp_path / "osv"
    for name in ("condapkg", "python"):  # condapkg depends on python; the conda `python` record is the interpreter
        (db / name).mkdir(parents=True)
        record = {
            "id": f"TEST-{name}",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": name},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        }
        (db / name / f"TEST-{name}.yaml").write_text(yaml.safe_dump(record))
    report = audit(project, tiers=["conda"], db=db)
    found = {(f.advisory.id, f.package.manager, f.where) for f in report.findings}
    assert found == {("TEST-condapkg", "conda", ("conda linux-64", "conda osx-arm64"))}
