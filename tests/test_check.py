"""`envtiers check` as a whole: the report it builds, and the project's own committed lockfiles."""

from __future__ import annotations

from envtiers.check import CheckReport, Problem, check_project
from envtiers.settings import load_project
from tests.support import REPO_ROOT


def test_committed_lockfiles_are_consistent_with_envs() -> None:
    report = check_project(load_project(REPO_ROOT))

    assert report.problems == (), "\n".join(problem.render() for problem in report.problems)
    assert report.checked == (
        "lockfiles/pip/linux-64.txt",
        "lockfiles/pip/osx-arm64.txt",
        "lockfiles/pip/dev/linux-64.txt",
        "lockfiles/pip/dev/osx-arm64.txt",
        "lockfiles/tools.txt",
        "lockfiles/conda-lock.yml",
    )


def test_report_exit_code_is_0_when_clean_else_the_worst_problem() -> None:
    assert CheckReport(("a.txt",), ()).exit_code == 0
    assert CheckReport(("a.txt",), (Problem("a.txt", "x"),)).exit_code == 1
    assert CheckReport(("a.txt",), (Problem("a.txt", "x"), Problem("a.txt", "y", exit_code=2))).exit_code == 2


def test_problem_renders_path_message_and_fix() -> None:
    assert Problem("lockfiles/pip/linux-64.txt", "stale").render() == (
        "lockfiles/pip/linux-64.txt: stale\n  fix: run `make lock`"
    )
