"""The offline check of pip locks: every kind of damage is found, named, and all of it is listed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from envtiers.check import CheckReport, check_project
from envtiers.errors import SpecError
from envtiers.pip import lockfile
from envtiers.pip.locker import dev_lock_path, lock, runtime_lock_path
from envtiers.settings import Project

ProjectFactory = Callable[..., Project]
LINUX = "lockfiles/pip/linux-64.txt"
OSX = "lockfiles/pip/osx-arm64.txt"
DIGEST = "content does not match its recorded digest: the file was edited by hand or truncated"


@pytest.fixture
def project(make_project: ProjectFactory) -> Project:
    # `purepkg>=2` lets an edited pin also break the spec, so both problems must be reported.
    project = make_project("purepkg>=2\nplatpkg\nmarkerpkg\n")
    lock(project)
    return project


def messages(report: CheckReport, path: str) -> list[str]:
    return [problem.message for problem in report.problems if problem.path == path]


def entry_line(path: Path, start: str) -> int:
    """The 1-based line number of the entry starting with `start`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.startswith(start))


def change_version(path: Path) -> None:
    path.write_text(path.read_text().replace("purepkg==2.0", "purepkg==1.0"))


def delete_hash(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    index = entry_line(path, "purepkg==")  # the line after the entry is its only hash
    path.write_text("".join(lines[:index] + lines[index + 1 :]))


def duplicate_entry(path: Path) -> None:
    text = path.read_text()
    entry = text[text.index("purepkg==2.0") :]
    path.write_text(text + entry)


def truncate_mid_entry(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("platpkg==1.0 \\\n") + len("platpkg==1.0 \\\n")])


def truncate_mid_hash(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("--hash", text.index("markerpkg==")) + 5])


def test_fresh_lock_is_consistent(project: Project) -> None:
    report = check_project(project)

    assert report.checked == (LINUX, OSX)
    assert report.problems == ()
    assert report.exit_code == 0


def test_a_lock_written_by_another_envtiers_version_is_still_consistent(project: Project) -> None:
    """The writer's version is provenance, not an input: upgrading envtiers stales nothing."""
    for name in (LINUX, OSX):
        path = project.root / name
        first, rest = path.read_text().split("\n", 1)
        path.write_text(re.sub(r"\(envtiers [^)]+\)", "(envtiers 99.0)", first) + "\n" + rest)
        assert lockfile.read(path).header.written_by == "99.0"
    assert check_project(project).problems == ()
    # ...and one from before the version was recorded reads as unknown, still consistent.
    path = project.root / LINUX
    first, rest = path.read_text().split("\n", 1)
    path.write_text(first.replace(" (envtiers 99.0)", "") + "\n" + rest)
    assert lockfile.read(path).header.written_by is None
    assert check_project(project).problems == ()


def test_edited_spec_marks_every_lock_stale(project: Project) -> None:
    project.pip.spec.write_text(project.pip.spec.read_text() + "linuxdep\n")

    report = check_project(project)

    stale = "stale: locked from different inputs than the current envs/requirements.in or envs/tiers.toml"
    assert messages(report, LINUX) == [stale]
    assert messages(report, OSX) == [stale, "linuxdep is required by envs/requirements.in but not pinned"]
    assert {problem.fix for problem in report.problems} == {"run `make lock`"}
    assert report.exit_code == 1
    assert report.problems[0].render() == f"{LINUX}: {stale}\n  fix: run `make lock`"


@pytest.mark.parametrize(
    ("damage", "expected", "exit_code"),
    [
        (change_version, [DIGEST, "purepkg==1.0 does not satisfy purepkg>=2 from envs/requirements.in"], 1),
        (delete_hash, [DIGEST, "purepkg==2.0 (line {purepkg}) has no hash"], 1),
        (duplicate_entry, [DIGEST, "purepkg is pinned 2 times"], 1),
        (truncate_mid_entry, [DIGEST, "line {platpkg}: entry ends in a line continuation (truncated file?)"], 1),
        (
            truncate_mid_hash,
            [DIGEST, "line {markerpkg}: expected `name==version --hash=...`, found 'markerpkg==1.0      --has'"],
            1,
        ),
        (lambda path: path.unlink(), ["does not exist"], 1),
        (
            lambda path: path.write_text(path.read_text().replace("# format-version: 1", "# format-version: 99")),
            ["has format version 99; this envtiers reads version 1"],
            2,
        ),
        (
            lambda path: path.write_text(path.read_text().replace("# platform: linux-64", "# platform: osx-arm64")),
            ["header says platform 'osx-arm64', expected 'linux-64'"],
            1,
        ),
    ],
    ids=[
        "version-edited",
        "hash-deleted",
        "entry-duplicated",
        "truncated-mid-entry",
        "truncated-mid-hash",
        "deleted",
        "unknown-format",
        "header-edited",
    ],
)
def test_damaged_lock_is_reported_with_every_problem(
    project: Project, damage: Callable[[Path], None], expected: list[str], exit_code: int
) -> None:
    path = runtime_lock_path(project, "linux-64")
    lines = {name: entry_line(path, f"{name}==") for name in ("purepkg", "platpkg", "markerpkg")}
    damage(path)

    report = check_project(project)

    assert messages(report, LINUX) == [text.format(**lines) for text in expected]
    assert messages(report, OSX) == []
    assert report.exit_code == exit_code


def test_problems_in_two_files_are_all_listed(project: Project) -> None:
    change_version(runtime_lock_path(project, "linux-64"))
    duplicate_entry(runtime_lock_path(project, "osx-arm64"))

    report = check_project(project)

    assert messages(report, LINUX) == [DIGEST, "purepkg==1.0 does not satisfy purepkg>=2 from envs/requirements.in"]
    assert messages(report, OSX) == [DIGEST, "purepkg is pinned 2 times"]
    assert report.exit_code == 1


def test_exit_code_is_the_worst_of_all_problems(project: Project) -> None:
    linux = runtime_lock_path(project, "linux-64")
    linux.write_text(linux.read_text().replace("# format-version: 1", "# format-version: 99"))
    change_version(runtime_lock_path(project, "osx-arm64"))

    report = check_project(project)

    assert [problem.path for problem in report.problems] == [LINUX, OSX, OSX]
    assert report.exit_code == 2


def test_dev_lock_that_disagrees_with_the_runtime_lock_is_reported(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\n", dev="purepkg\nplatpkg\n")
    lock(project)
    path = dev_lock_path(project, "linux-64")
    dev = lockfile.read(path)
    # Rewritten with a valid digest and input hash: only the cross-lock comparison can catch it.
    path.write_text(
        lockfile.render(
            kind="dev",
            platform="linux-64",
            python="3.11",
            input_hash=dev.header.input_hash,
            body=dev.body.replace("purepkg==2.0", "purepkg==1.0"),
        )
    )

    report = check_project(project)

    assert [(p.path, p.message) for p in report.problems] == [
        ("lockfiles/pip/dev/linux-64.txt", f"purepkg==1.0 disagrees with {LINUX} (purepkg==2.0)")
    ]


def test_broken_runtime_lock_is_reported_once_not_again_through_the_dev_lock(make_project: ProjectFactory) -> None:
    project = make_project("purepkg\n", dev="platpkg\n")
    lock(project)
    osx = runtime_lock_path(project, "osx-arm64")
    osx.write_text("# envtiers pip lock\n")

    report = check_project(project)

    assert [p.path for p in report.problems] == [OSX]
    assert "damaged header" in report.problems[0].message


def test_unusable_spec_is_an_input_error_not_a_problem(project: Project) -> None:
    project.pip.spec.write_text("-r other.in\n")

    with pytest.raises(SpecError, match=r"envs/requirements\.in:1: options like '-r'"):
        check_project(project)
