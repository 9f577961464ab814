"""`envtiers check`: every configured tier's lockfiles against their inputs (offline)."""

from __future__ import annotations

import argparse

from envtiers.registry import tier_names
from envtiers.settings import Project


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="verify lockfiles against their inputs (offline)")
    parser.add_argument("--tier", action="append", choices=tier_names(), help="only this tier (repeatable)")
    parser.add_argument(
        "--verbose", dest="coverage", action="store_true", help="also print each platform's coverage and download size"
    )
    parser.set_defaults(handler=run)


def run(project: Project, args: argparse.Namespace) -> int:
    from envtiers.check import check_project

    report = check_project(project, tiers=tuple(args.tier) if args.tier else None)
    for problem in report.problems:
        print(problem.render())
    if report.problems:
        print(f"{len(report.problems)} problem(s) in {len(report.checked)} lockfile(s)")
    else:
        print(f"{len(report.checked)} lockfile(s) consistent")
    if args.coverage:
        from envtiers.review.cli import print_coverage

        print_coverage(project)
    return report.exit_code
