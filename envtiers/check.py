"""`envtiers check`: offline, solver-free verification that every lockfile still matches its inputs.

A check recomputes and compares: it never resolves and never touches the network, so it can run
in CI on every commit. It collects every problem instead of stopping at the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.errors import EXIT_FAILED, EXIT_OK, LockfileFormatError
from envtiers.settings import Project


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str = "run `make lock`"
    exit_code: int = EXIT_FAILED

    def render(self) -> str:
        return f"{self.path}: {self.message}\n  fix: {self.fix}"


@dataclass(frozen=True)
class CheckReport:
    checked: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def exit_code(self) -> int:
        if not self.problems:
            return EXIT_OK
        return max(p.exit_code for p in self.problems)


def problem_from_error(path: str, error: LockfileFormatError) -> Problem:
    message = error.headline.removeprefix(path).removeprefix(":").strip() or error.headline
    number, sep, rest = message.partition(": ")
    if sep and number.isdigit():  # "path:14: ..." from the parser reads better as "line 14: ..."
        message = f"line {number}: {rest}"
    return Problem(path, message, error.fix or "run `make lock`", error.exit_code)


def configured_tiers(project: Project) -> tuple[str, ...]:
    """The tiers `check` covers: pip always; conda when it has its environment file; image (a no-op
    until a team commits lockfiles/image.json)."""
    from envtiers.conda.spec import is_configured

    return ("pip", "conda", "image") if is_configured(project) else ("pip", "image")


def check_project(project: Project, *, tiers: tuple[str, ...] | None = None) -> CheckReport:
    """Check every lockfile of the chosen tiers (default: the configured ones).

    Raises InputError when the spec itself is unusable.
    """
    from envtiers.image.checker import check_image
    from envtiers.pip.checker import check_pip

    if tiers is None:
        tiers = configured_tiers(project)
    checked: list[str] = []
    problems: list[Problem] = []
    if "pip" in tiers:
        files, found = check_pip(project)
        checked += files
        problems += found
    if "conda" in tiers:
        from envtiers.conda.checker import check_conda

        files, found = check_conda(project)
        checked += files
        problems += found
    if "image" in tiers:
        files, found = check_image(project)
        checked += files
        problems += found
    return CheckReport(tuple(checked), tuple(problems))
