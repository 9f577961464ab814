"""`envtiers lock`: resolve the lockfiles whose inputs changed, every lockable tier in order."""

from __future__ import annotations

import argparse

from envtiers.commands import say
from envtiers.errors import EXIT_OK
from envtiers.registry import LOCKABLE, configured_tiers, get_tier
from envtiers.settings import Project
from envtiers.tiers import LockOptions


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lock", help="resolve lockfiles whose inputs changed")
    parser.add_argument("--tier", choices=LOCKABLE, help="only this tier (default: every tier, pip first)")
    parser.add_argument("--platform", action="append", help="only this platform (repeatable)")
    parser.add_argument("--force", action="store_true", help="re-resolve even when inputs are unchanged")
    parser.add_argument("--upgrade", action="store_true", help="re-resolve to the newest allowed versions")
    parser.set_defaults(handler=run)


def run(project: Project, args: argparse.Namespace) -> int:
    # --platform narrows the tiers that lock per platform; the others say whether it applies.
    tiers = [args.tier] if args.tier else list(configured_tiers(project, LOCKABLE))
    options = LockOptions(
        platforms=tuple(args.platform or ()), force=args.force, upgrade=args.upgrade, only_this_tier=bool(args.tier)
    )
    results = [result for name in tiers for result in get_tier(name).lock(project, options, say)]
    changed = sum(result.changed for result in results)
    say(f"{changed} lockfile(s) written, {len(results) - changed} up to date")
    return EXIT_OK
