"""What a check finds: `Problem`s collected into a `CheckReport` (a leaf module: every tier's
checker imports it, it imports no tier)."""

from __future__ import annotations

from dataclasses import dataclass

from envtiers.errors import EXIT_FAILED, EXIT_OK, LockfileFormatError


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
