"""envtiers diff between two lock revisions in a git repository the test makes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from envtiers.pip.locker import lock
from envtiers.review.diff import diff, render
from envtiers.settings import Project, load_project
from tests.review.support import write_osv_folder
from tests.support import MANYLINUX, PackageIndex, build_wheel, run_cli, write_project

BEFORE = "purepkg==1.0\nplatpkg\n"
AFTER = "purepkg==2.0\nmarkerpkg\nnvidia-cublas-cu12; sys_platform == 'linux'\n"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@e", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _two_revisions(root: Path, index: PackageIndex, cache: Path, after: str = AFTER) -> tuple[Project, str]:
    write_project(root, requirements=BEFORE, index_url=index.url)
    project = load_project(root, cache_dir=cache)
    lock(project)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "before")
    base = _git(root, "rev-parse", "HEAD")
    (root / "envs" / "requirements.in").write_text(after)
    lock(project)
    return project, base


def test_diff_reports_every_kind_of_change(tmp_path: Path, private_index: PackageIndex) -> None:
    build_wheel(private_index.directory, "nvidia_cublas_cu12", "12.9", tag=MANYLINUX, extra_source="#" * 5000)
    project, base = _two_revisions(tmp_path / "repo", private_index, tmp_path / "cache")
    db = write_osv_folder(tmp_path / "osv")

    result = diff(project, base=base, db=db)
    linux = next(s for s in result.sets if s.label == "pip linux-64")
    kinds = {c.name: (c.kind, c.before, c.after) for c in linux.changes}
    assert kinds == {
        "purepkg": ("upgraded", "1.0", "2.0"),
        "platpkg": ("removed", "1.0", None),
        "markerpkg": ("added", None, "1.0"),
        "linuxdep": ("added", None, "1.0"),
        "nvidia-cublas-cu12": ("added", None, "12.9"),
    }
    assert linux.gpu_added == ["nvidia-cublas-cu12"] and linux.gpu_removed == []
    files = {p.name: p.stat().st_size for p in private_index.files()}
    expected = (
        files["purepkg-2.0-py3-none-any.whl"]
        - files["purepkg-1.0-py3-none-any.whl"]
        - files[f"platpkg-1.0-{MANYLINUX}.whl"]
        + files["markerpkg-1.0-py3-none-any.whl"]
        + files["linuxdep-1.0-py3-none-any.whl"]
        + files[f"nvidia_cublas_cu12-12.9-{MANYLINUX}.whl"]
    )
    assert linux.size_delta == expected and linux.unknown_sizes == 0
    # purepkg 1.0 (TEST-2024-1) and platpkg 1.0 (TEST-2024-2) went away; nothing new came in.
    assert [a.split(" ")[0] for a in linux.advisories_fixed] == ["TEST-2024-1", "TEST-2024-2"]
    assert linux.advisories_introduced == ()
    mac = next(s for s in result.sets if s.label == "pip osx-arm64")
    assert "nvidia-cublas-cu12" not in {c.name for c in mac.changes} and "macdep" in {c.name for c in mac.changes}

    markdown = render(result, "markdown")
    assert "| pip linux-64 | 3 | 1 | 1 | 0 |" in markdown and "<details>" in markdown
    assert "+nvidia-cublas-cu12" in markdown
    data = json.loads(render(result, "json"))
    assert data["base"] == base and data["sets"][0]["size_delta"] == expected

    text = run_cli(project.root, "diff", "--base", base, "--no-sizes")
    assert text.returncode == 0, text.stderr
    assert "upgraded   purepkg 1.0 -> 2.0" in text.stdout and "nvidia-cublas-cu12 12.9 [CUDA]" in text.stdout


def test_default_base_is_head_for_uncommitted_changes(tmp_path: Path, package_index: PackageIndex) -> None:
    project, _ = _two_revisions(tmp_path / "repo", package_index, tmp_path / "cache", after="purepkg==2.0\n")
    result = diff(project, sizes=False)
    assert result.base == "HEAD"
    assert {c.name for s in result.sets for c in s.changes} >= {"purepkg", "platpkg"}
    _git(project.root, "commit", "-q", "-am", "after")
    assert all(s.empty for s in diff(project, sizes=False).sets)


def test_unknown_revision_is_bad_input(locked_project: Project) -> None:
    subprocess.run(["git", "-C", str(locked_project.root), "init", "-q"], check=True)
    result = run_cli(locked_project.root, "diff", "--base", "no-such-rev")
    assert result.returncode == 2 and "does not know the revision" in result.stderr and "Traceback" not in result.stderr


def test_diff_of_an_unchanged_tree_says_so(make_project: Callable[..., Project]) -> None:
    project = make_project()
    lock(project)
    _git(project.root, "init", "-q")
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-q", "-m", "x")
    assert "No lock changes." in render(diff(project, sizes=False), "markdown")
