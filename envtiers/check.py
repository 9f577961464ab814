"""`envtiers check`: offline, solver-free verification that every lockfile still matches its inputs.

A check recomputes and compares: it never resolves and never touches the network, so it can run
in CI on every commit. It collects every problem instead of stopping at the first. Each tier checks
its own lockfiles (`Tier.check`); this module only loops over the registry.
"""

from __future__ import annotations

from envtiers.problems import CheckReport, Problem, problem_from_error
from envtiers.registry import configured_tiers, get_tier
from envtiers.settings import Project

__all__ = ["CheckReport", "Problem", "check_project", "configured_tiers", "problem_from_error"]


def check_project(project: Project, *, tiers: tuple[str, ...] | None = None) -> CheckReport:
    """Check every lockfile of the chosen tiers (default: the configured ones).

    Raises InputError when the spec itself is unusable.
    """
    checked: list[str] = []
    problems: list[Problem] = []
    for name in tiers if tiers is not None else configured_tiers(project):
        files, found = get_tier(name).check(project)
        checked += files
        problems += found
    return CheckReport(tuple(checked), tuple(problems))
