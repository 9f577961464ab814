"""envtiers check --verbose: per platform, the packages locked, their download size, what only it has."""

from __future__ import annotations

from envtiers.review.coverage import coverage
from envtiers.settings import Project
from tests.support import MACOS_ARM, MANYLINUX, PackageIndex, run_cli


def test_coverage_per_platform(locked_project: Project, package_index: PackageIndex) -> None:
    rows, note = coverage(locked_project)
    assert note is None
    by_platform = {row.platform: row for row in rows}
    files = {p.name: p.stat().st_size for p in package_index.files()}
    linux, mac = by_platform["linux-64"], by_platform["osx-arm64"]
    assert (linux.packages, linux.only_here, mac.only_here) == (4, ("linuxdep",), ("macdep",))
    common = files["purepkg-2.0-py3-none-any.whl"] + files["markerpkg-1.0-py3-none-any.whl"]
    assert linux.download == common + files[f"platpkg-1.0-{MANYLINUX}.whl"] + files["linuxdep-1.0-py3-none-any.whl"]
    assert mac.download == common + files[f"platpkg-1.0-{MACOS_ARM}.whl"] + files["macdep-1.0-py3-none-any.whl"]

    result = run_cli(locked_project.root, "check", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lockfiles/pip/linux-64.txt: linux-64: 4 packages, download" in result.stdout
    assert "only on osx-arm64: macdep" in result.stdout
    assert "download" not in run_cli(locked_project.root, "check").stdout
